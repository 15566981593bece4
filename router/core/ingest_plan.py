"""What an inbound message does, as one table: where it threads × whether a machine sent it.

Pure and total over its six cells, so each cell has its own unit test and the pipeline only
follows the plan. "Automated" is an auto-reply, bounce or list mail: it is kept on the thread for
agents to see, but never counts as the customer writing, never routes, starts no clock and is
never acknowledged (SPEC §2.9).
"""

from __future__ import annotations

from dataclasses import dataclass

from router.core.refs import Status
from router.core.store.tickets import ThreadAction


@dataclass(frozen=True)
class IngestPlan:
    thread: ThreadAction
    new_ticket_status: Status | None  # the status of the ticket this message creates (None: it creates none)
    customer_wrote: bool  # the ticket is open again, may take a higher priority, its clocks resume / cycle
    reopen: bool  # a solved ticket comes back: new SLA cycles, back to its agent
    route: bool  # find the best agent (new ticket), or give it back to its agent (reopened)
    start_clocks: bool  # match an SLA policy and start the first-response and resolution clocks
    acknowledge: bool  # tell the customer the reference and the due time


_PLANS: dict[tuple[ThreadAction, bool], IngestPlan] = {
    # (thread, automated):  new ticket status, customer wrote, reopen, route, start clocks, acknowledge
    ("join", False): IngestPlan("join", None, customer_wrote=True, reopen=False, route=False,
                                start_clocks=False, acknowledge=False),
    ("reopen", False): IngestPlan("reopen", None, customer_wrote=True, reopen=True, route=True,
                                  start_clocks=False, acknowledge=False),
    ("new", False): IngestPlan("new", "open", customer_wrote=False, reopen=False, route=True,
                               start_clocks=True, acknowledge=True),
    # An automated message is only attached: to the active ticket, to the solved one it answers
    # (which stays solved), or to a new closed ticket nobody has to work.
    ("join", True): IngestPlan("join", None, customer_wrote=False, reopen=False, route=False,
                               start_clocks=False, acknowledge=False),
    ("reopen", True): IngestPlan("reopen", None, customer_wrote=False, reopen=False, route=False,
                                 start_clocks=False, acknowledge=False),
    ("new", True): IngestPlan("new", "closed", customer_wrote=False, reopen=False, route=False,
                              start_clocks=False, acknowledge=False),
}


def plan_ingest(thread: ThreadAction, *, automated: bool) -> IngestPlan:
    return _PLANS[(thread, automated)]
