"""The benchmark table and `.bench/latest.json`."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LATEST = REPO / ".bench" / "latest.json"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.value / self.baseline


def write(figures: list[Figure], path: Path = LATEST) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        figure.name: {
            **{k: v for k, v in asdict(figure).items() if k != "name"},
            "ratio": figure.ratio,
        }
        for figure in figures
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "baseline", "ratio")]
    for figure in figures:
        rows.append(
            (
                figure.name,
                _number(figure.value),
                figure.unit,
                "" if figure.baseline is None else _number(figure.baseline),
                "" if figure.ratio is None else f"{figure.ratio:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
