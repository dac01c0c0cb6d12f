"""Executors by kind: `build_executor("shell", deps)`.

A table of factories rather than a chain of ifs. The agent and Claude Code
executors are imported only when built, so the app starts without loading
the Anthropic SDK or claude-agent-sdk.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from engine.executors.base import Executor, ExecutorError


@dataclass
class ExecutorDeps:
    """What an executor may need from the engine to be built."""

    llm: object | None = None


def _shell(deps: ExecutorDeps) -> Executor:
    from engine.executors.shell import ShellExecutor

    return ShellExecutor()


def _scripted(deps: ExecutorDeps) -> Executor:
    from engine.executors.scripted import ScriptedExecutor

    return ScriptedExecutor()


def _noop(deps: ExecutorDeps) -> Executor:
    from engine.executors.noop import NoopExecutor

    return NoopExecutor()


def _agent(deps: ExecutorDeps) -> Executor:
    module = importlib.import_module("engine.executors.agent")
    return module.AgentExecutor(llm=deps.llm)


def _claude_code(deps: ExecutorDeps) -> Executor:
    module = importlib.import_module("engine.executors.claude_code")
    return module.ClaudeCodeExecutor()


REGISTRY: dict[str, Callable[[ExecutorDeps], Executor]] = {
    "shell": _shell,
    "scripted": _scripted,
    "noop": _noop,
    "agent": _agent,
    "claude_code": _claude_code,
}


def build_executor(kind: str, deps: ExecutorDeps | None = None) -> Executor:
    """The executor for `kind` (an `ExecutorKind` or its string value)."""
    key = str(getattr(kind, "value", kind))
    try:
        factory = REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ExecutorError(f"unknown executor kind {key!r}; known kinds: {known}") from None
    return factory(deps or ExecutorDeps())


__all__ = ["REGISTRY", "ExecutorDeps", "build_executor"]
