"""Small modal dialogs: confirm, ask for one value, pick from a list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from fino.store.text import printable


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; y/enter confirms, n/escape declines."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer(True)", "Yes"),
                                             Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__(classes="dialog")
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Static(self.question, markup=False, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="warning", id="yes", compact=True)
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PromptScreen(ModalScreen[str | None]):
    """One line of input; `check` raises ValueError with a message to keep the dialog open."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, *, value: str = "", placeholder: str = "",
                 check: Callable[[str], object] | None = None) -> None:
        super().__init__(classes="dialog")
        self.title_text, self.value, self.placeholder, self.check = title, value, placeholder, check

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Static(self.title_text, markup=False, classes="question")
            yield Input(self.value, placeholder=self.placeholder, compact=True)
            yield Static("", classes="error", markup=False)
            yield Static("enter: OK · escape: cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            if self.check:
                self.check(event.value)
        except ValueError as exc:
            self.query_one(".error", Static).update(Text(printable(str(exc))))
            return
        self.dismiss(event.value)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of `choices` (id, label); type to narrow the list."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel"),
                Binding("down", "move(1)", show=False), Binding("up", "move(-1)", show=False)]

    def __init__(self, title: str, choices: Sequence[tuple[str, str]], current: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text, self.choices, self.current = title, list(choices), current

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Static(self.title_text, markup=False, classes="question")
            yield Input(placeholder="type to filter", compact=True)
            yield OptionList(*self._options(""), classes="choices")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [choice for choice, _ in self.choices]
        if self.current in ids:
            options.highlighted = ids.index(self.current)
        self.query_one(Input).focus()

    def _options(self, text: str) -> list[Option]:
        words = text.lower().split()
        return [Option(Text(printable(label)), id=choice) for choice, label in self.choices
                if all(w in label.lower() for w in words)]

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            self.dismiss(options.get_option_at_index(options.highlighted).id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_move(self, by: int) -> None:
        options = self.query_one(OptionList)
        if by > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()
