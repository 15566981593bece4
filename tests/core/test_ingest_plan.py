"""The ingest decision table: one test per cell (where the message threads × whether a machine sent it)."""

from router.core.ingest_plan import IngestPlan, plan_ingest


def effects(plan: IngestPlan) -> dict[str, object]:
    return {"new_ticket_status": plan.new_ticket_status, "customer_wrote": plan.customer_wrote,
            "reopen": plan.reopen, "route": plan.route, "start_clocks": plan.start_clocks,
            "acknowledge": plan.acknowledge}


NOTHING = {"new_ticket_status": None, "customer_wrote": False, "reopen": False, "route": False,
           "start_clocks": False, "acknowledge": False}


def test_a_customer_follow_up_joins_the_active_ticket_without_routing_or_ack() -> None:
    assert effects(plan_ingest("join", automated=False)) == {**NOTHING, "customer_wrote": True}


def test_a_customer_message_reopens_a_solved_ticket_and_gives_it_back_to_its_agent() -> None:
    assert effects(plan_ingest("reopen", automated=False)) == {**NOTHING, "customer_wrote": True, "reopen": True,
                                                                "route": True}


def test_a_new_request_opens_a_ticket_routes_starts_clocks_and_is_acknowledged() -> None:
    assert effects(plan_ingest("new", automated=False)) == {**NOTHING, "new_ticket_status": "open", "route": True,
                                                             "start_clocks": True, "acknowledge": True}


def test_an_auto_reply_on_an_active_ticket_is_only_attached() -> None:
    assert effects(plan_ingest("join", automated=True)) == NOTHING


def test_an_auto_reply_to_a_solved_ticket_leaves_it_solved() -> None:
    assert effects(plan_ingest("reopen", automated=True)) == NOTHING


def test_an_auto_reply_with_nothing_to_join_is_kept_on_a_closed_ticket_nobody_works() -> None:
    assert effects(plan_ingest("new", automated=True)) == {**NOTHING, "new_ticket_status": "closed"}
