"""The command palette (ctrl+p): every key's action by name, plus "Open"
for each directive. Built from the bindings of the screen it was opened
on, so whatever a key does, the palette does too; an action that does not
apply now (the screen's `check_action`: "Pause" on a paused directive) is
left out, as the footer leaves out its key."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from engine.models import Directive

Command = tuple[str, str, DOMNode, str]  # (title, help, node, action)


def screen_commands(screen: DOMNode) -> list[Command]:
    """(title, help, node, action) for every described binding of the
    screen, of our widgets on it (once per class), and of the app, that
    applies now."""
    app = screen.app
    nodes: list[DOMNode] = [screen]
    classes: set[type] = set()
    for widget in screen.query("*"):
        kind = type(widget)
        if kind.__module__.startswith("tui.") and kind not in classes:
            classes.add(kind)
            nodes.append(widget)
    nodes.append(app)
    out: list[Command] = []
    seen: set[tuple[int, str]] = set()
    titles: set[tuple[int, str, str]] = set()  # `G` is bound twice to one meaning
    for node in nodes:
        for bindings in node._bindings.key_to_bindings.values():  # noqa: SLF001
            for b in bindings:
                if not b.description or (id(node), b.action) in seen:
                    continue
                if b.action in ("command_palette", "app.command_palette"):
                    continue
                if not app._check_action_state(b.action, node):  # noqa: SLF001
                    continue
                key = app.get_key_display(b)
                if (id(node), b.description, key) in titles:
                    continue
                seen.add((id(node), b.action))
                titles.add((id(node), b.description, key))
                out.append((b.description, f"key: {key}", node, b.action))
    return out


class DirectiveCommands(Provider):
    async def startup(self) -> None:
        self.directives: list[Directive] = []
        engine = getattr(self.app, "engine", None)
        if engine is not None:
            self.directives = await engine.store.list_directives()

    def _all(self) -> list[tuple[str, str, object]]:
        run = self.app.run_action
        hits: list[tuple[str, str, object]] = [
            (title, help_text, partial(run, action, node))
            for title, help_text, node, action in screen_commands(self.screen)
        ]
        opener = getattr(self.app, "open_directive_screen", None)
        if opener is not None:
            hits += [
                (f"Open: {d.title}", f"{d.status.value} · {d.id}", partial(opener, d.id))
                for d in self.directives
            ]
        return hits

    async def discover(self) -> Hits:
        for title, help_text, command in self._all():
            yield DiscoveryHit(title, command, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._all():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, text=title, help=help_text)  # type: ignore[arg-type]
