"""Channels: one package per way customers reach us, each an inbound adapter and/or a sender
implementing the contract in `channels.base`."""
