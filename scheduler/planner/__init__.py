"""The pure planner: plan(policy, snapshot, at) -> Plan, and the timeline replay built on it."""

from scheduler.planner.changepoints import change_points, policy_change_points
from scheduler.planner.model import Action, ConsortiumPlan, NodeIntent, Plan, PoolPlan
from scheduler.planner.plan import namespace_state, plan

__all__ = [
    "Action",
    "ConsortiumPlan",
    "NodeIntent",
    "Plan",
    "PoolPlan",
    "change_points",
    "namespace_state",
    "plan",
    "policy_change_points",
]
