"""The controller's tick logic, without ROS: engage/disengage, faults, recurrent-state resets, safety.

The node owns the ROS plumbing (parameters, subscriptions, timer, publishers, services) and calls
`ControlCore.tick(now_ns)` once per control period; everything that decides *what* to command lives here,
so it is tested with a fake clock and no DDS.

Recurrent-state reset rule (also in the README): the policy state is reset
  - when the controller is enabled (and at start-up with autostart),
  - on the ~/reset service,
  - when the instruction changes (if `reset_on_instruction_change`),
  - when inputs come back after a fault that lasted longer than `fault_reset_time`,
  - when the policy produced a non-finite action (the state may be poisoned).
A shorter fault keeps the state: the policy resumes where it was, the safety filter blends the arm in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from vand_ros.controller.safety import FilterResult, SafetyFilter
from vand_ros.runtime.assembler import ObservationAssembler
from vand_ros.runtime.layout import Layout

NS_PER_S = 1_000_000_000


class Policy(Protocol):
    """What the core needs of the policy (PolicyRuntime on the robot)."""

    def reset(self) -> None: ...

    def step(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


@dataclass
class TickResult:
    """What to publish this tick. `command` None: publish nothing (disabled, or nothing safe to hold)."""

    command: FilterResult | None
    state: str  # "disabled", "running", "holding"
    reasons: tuple[str, ...] = ()  # why holding (empty when running)
    causes: tuple[str, ...] = ()  # the same without numbers: stable while the cause persists (log once)
    instruction: str | None = None
    reset: str | None = None  # why the recurrent state was reset this tick, if it was


@dataclass
class CoreCounters:
    ticks: int = 0
    policy_steps: int = 0
    holds: int = 0
    faults: int = 0  # fault episodes (transitions running -> holding)
    resets: int = 0
    clamps: dict[str, int] = field(default_factory=lambda: {"position": 0, "step": 0, "base": 0})


class ControlCore:
    """Decides each tick's command from the assembled observation, the policy and the safety filter."""

    def __init__(
        self,
        policy: Policy,
        assembler: ObservationAssembler,
        safety: SafetyFilter,
        layout: Layout,
        reset_on_instruction_change: bool = True,
        fault_reset_time: float = 1.0,
    ) -> None:
        self.policy = policy
        self.assembler = assembler
        self.safety = safety
        self.layout = layout
        self.reset_on_instruction_change = reset_on_instruction_change
        self.fault_reset_ns = round(fault_reset_time * NS_PER_S)
        self.enabled = False
        self.counters = CoreCounters()
        self._pending_reset: str | None = None
        self._fault_since: int | None = None
        self._instruction: str | None = None
        self._disengage_pending = False
        self._act = layout.act_slices

    # -- commands from services -------------------------------------------------------------------------
    def enable(self) -> None:
        if not self.enabled:
            self.enabled = True
            self._pending_reset = "enabled"
            self.safety.engage(self.measured_joints())
            self._fault_since = None

    def disable(self) -> None:
        if self.enabled:
            self.enabled = False
            self._disengage_pending = True

    def request_reset(self, why: str = "reset requested") -> None:
        self._pending_reset = why

    # -- the tick ---------------------------------------------------------------------------------------
    def measured_joints(self) -> npt.NDArray[np.float64] | None:
        """Latest accepted joint positions [rad] in layout order (possibly stale), None if never received."""
        values = self.assembler.joints.values
        return np.asarray(values[-1].position, dtype=np.float64) if values else None

    def tick(self, now_ns: int) -> TickResult:
        self.counters.ticks += 1
        obs = self.assembler.assemble(now_ns)
        if not self.enabled:
            if self._disengage_pending:  # one last safe command: hold the arm, stop the base
                self._disengage_pending = False
                return TickResult(
                    self.safety.hold(self.measured_joints()), "disabled", instruction=obs.instruction
                )
            return TickResult(None, "disabled", instruction=obs.instruction)

        if obs.vector is None:
            return self._hold(now_ns, obs.reasons, obs.instruction, causes=obs.causes)

        reset = self._reset_reason(now_ns, obs.instruction)
        self._fault_since = None
        if reset is not None:
            self.policy.reset()
            self.counters.resets += 1
        action = self.policy.step(obs.vector)
        self.counters.policy_steps += 1
        if not np.all(np.isfinite(action)):
            self._pending_reset = "the policy produced a non-finite action"
            return self._hold(now_ns, ("policy output is not finite",), obs.instruction, reset)
        result = self.safety.filter(
            action[self._act["joints"]], action[self._act["base"]], self.measured_joints()
        )
        if result is None:
            return self._hold(now_ns, ("no joint position to start from",), obs.instruction, reset)
        c = self.counters.clamps
        c["position"] += result.clamped_position
        c["step"] += result.clamped_step
        c["base"] += result.clamped_base
        return TickResult(result, "running", (), (), obs.instruction, reset)

    def _reset_reason(self, now_ns: int, instruction: str | None) -> str | None:
        reason = self._pending_reset
        self._pending_reset = None
        if instruction != self._instruction:
            if self._instruction is not None and self.reset_on_instruction_change and reason is None:
                reason = f"instruction changed to {instruction!r}"
            self._instruction = instruction
        if (
            reason is None
            and self._fault_since is not None
            and now_ns - self._fault_since > self.fault_reset_ns
        ):
            reason = "inputs recovered after a long fault"
        return reason

    def _hold(
        self,
        now_ns: int,
        reasons: tuple[str, ...],
        instruction: str | None,
        reset: str | None = None,
        causes: tuple[str, ...] | None = None,
    ) -> TickResult:
        if self._fault_since is None:
            self._fault_since = now_ns
            self.counters.faults += 1
        self.counters.holds += 1
        hold = self.safety.hold(self.measured_joints())
        return TickResult(
            hold, "holding", reasons, causes if causes is not None else reasons, instruction, reset
        )
