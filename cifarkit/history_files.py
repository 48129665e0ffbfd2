"""A training `History` in files: `history_to_json` / `history_from_json` (records and meta) and
`history_to_csv` (one row per epoch). A file that is missing, unreadable or not a History is
refused in one line naming it.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .training import History
from .validation import output_file

__all__ = ["history_to_json", "history_from_json", "history_to_csv"]


def history_to_json(history: History, path) -> Path:
    """Write `history`'s records and meta to `path` as JSON; returns the path."""
    path = output_file("path", path)
    path.write_text(json.dumps({"meta": history.meta, "records": history.records}, indent=1))
    return path


def history_from_json(path) -> History:
    """Read a file written by `history_to_json`; a missing, unreadable or foreign file raises one
    line naming it (`FileNotFoundError` / `ValueError`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a History file")
    if not path.is_file():
        raise FileNotFoundError(f"no History file at {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"could not read {path} as a History JSON file ({type(e).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list) \
            or not all(isinstance(r, dict) for r in data["records"]):
        raise ValueError(f"{path} is not a History JSON file: it has no list of 'records'")
    return History(data["records"], data.get("meta"))


def history_to_csv(history: History, path) -> Path:
    """Write `history`'s records to `path` as CSV, one row per epoch; returns the path."""
    path = output_file("path", path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=history.columns)
        writer.writeheader()
        writer.writerows(history.records)
    return path
