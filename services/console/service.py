"""What every route of the console reaches: the stack's client, the board, the load runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.templating import Jinja2Templates

from services.console.board import Board
from services.console.loadrun import LoadRunner
from services.console.settings import ConsoleSettings
from services.console.stack import ServiceAnswered, ServiceUnreachable, Stack

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]


@dataclass
class Console:
    settings: ConsoleSettings
    stack: Stack
    board: Board
    runner: LoadRunner
    templates: Jinja2Templates
    evaluation_dir: Path = REPO_ROOT / "docs" / "evaluation"
    errors: tuple[type[Exception], ...] = (ServiceAnswered, ServiceUnreachable)

    @staticmethod
    def status_of(error: Exception) -> int:
        """A service's refusal of what was typed is the typist's (its 4xx, passed on); a
        service that failed or is down is the console's upstream problem (502, 503)."""
        if isinstance(error, ServiceAnswered):
            return error.status if error.status < 500 else 502
        return 503

    def plot_roots(self) -> dict[str, Path]:
        return {"reports": (self.settings.console_reports_dir / "load").resolve(),
                "evaluation": self.evaluation_dir.resolve()}

    def file_url(self, path: Path) -> str:
        for name, root in self.plot_roots().items():
            if path.resolve().is_relative_to(root):
                return f"/files/{name}/{path.resolve().relative_to(root)}"
        raise ValueError(f"{path} is under no plot root")

    def plot_file(self, path: str) -> Path | None:
        """`path` under one of the plot roots, if it is a PNG there (no escaping with ..)."""
        name, _, rest = path.partition("/")
        root = self.plot_roots().get(name)
        if root is None or not rest:
            return None
        candidate = (root / rest).resolve()
        if candidate.suffix == ".png" and candidate.is_file() and candidate.is_relative_to(root):
            return candidate
        return None
