"""Messenger, Instagram and the WhatsApp Cloud API: one Meta app webhook in, the Graph API out."""
