"""Check records against stored references (detectron2 ``verify_results`` style, as data).

A reference file (YAML) lists figures with tolerances::

    reference: smoke-cpu
    description: what was measured, how, on which machine
    checks:
      - {cell: coco-stuff/default/deop, metric: hiou, value: 12.3, tolerance: 0.5, direction: higher}
      - {cell: speed/as-published/deop, over: speed/as-published/simbaseline, metric: fps,
         value: 4.1, tolerance: 0.8, direction: higher}        # a ratio between two cells of one run

A ratio of ``fps`` (or ``ms_per_image``) between two speed records timed in one group is their paired ratio:
the median of per-round ratios on the same images (`harness.tables.ratio_between`), robust to load that comes
and goes; other ratios divide the two figures.

A check with ``over`` on a metric of the per-image evidence (mIoU, seen, unseen, hIoU, pAcc) is also judged by a
paired bootstrap over the same images (`harness.eval.claims`): "holds", "fails" or "not significant at 95%",
with the difference's interval; ``significance: true`` makes "holds" a condition of passing.

``direction``: ``higher`` (higher is better: fails when measured < value - tolerance), ``lower`` (fails when
measured > value + tolerance), ``equal`` (fails when |measured - value| > tolerance). A check whose cell has no
record, whose record failed, or whose metric is absent fails: a missing figure is never a pass.
Exit codes: 0 all hold, 1 something regressed or is missing, 2 unusable input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import RecordError
from .eval.claims import ClaimVerdict, claims_report, paired_claim
from .eval.per_image import HEADLINE
from .paths import read_text_file
from .results import load_records
from .tables import ratio_between, record_value
from .yaml_lines import load_yaml

DIRECTIONS = ("higher", "lower", "equal")
CHECK_KEYS = {"cell", "over", "metric", "value", "tolerance", "direction", "suite", "note", "significance"}


@dataclass(frozen=True)
class Check:
    cell: str
    metric: str
    value: float
    tolerance: float
    direction: str
    over: str | None = None
    suite: str | None = None
    note: str = ""
    significance: bool = False  # a claim (over) must also hold by the paired bootstrap

    @property
    def name(self) -> str:
        return f"{self.cell} / {self.over}" if self.over else self.cell


@dataclass(frozen=True)
class Outcome:
    check: Check
    measured: float | None
    passed: bool
    reason: str
    how: str = ""  # for a ratio: paired or unpaired
    claim: ClaimVerdict | None = None  # for a ratio of accuracy metrics: the paired bootstrap's verdict


def load_reference(path: str | Path) -> tuple[dict, list[Check]]:
    path = Path(path)
    try:
        data = load_yaml(read_text_file(path, "reference file"), str(path))  # 1e-3 is a number here too
    except FileNotFoundError:
        raise RecordError(f"reference file {path} does not exist. References live in results/reference/.") from None
    except OSError as exc:
        raise RecordError(f"reference file {path} cannot be read ({exc.strerror}); give a reference YAML file.") from None
    except yaml.YAMLError as exc:
        raise RecordError(f"reference file {path} is malformed YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list) or not data["checks"]:
        raise RecordError(f"reference file {path} must be a mapping with a non-empty 'checks' list.")
    checks = []
    for i, item in enumerate(data["checks"]):
        where = f"{path}: checks[{i}]"
        if not isinstance(item, dict):
            raise RecordError(f"{where} must be a mapping.")
        unknown = set(item) - CHECK_KEYS
        missing = {"cell", "metric", "value", "tolerance", "direction"} - set(item)
        if unknown or missing:
            raise RecordError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}.")
        wrong = [key for key in ("cell", "metric", "direction", "over", "suite", "note")
                 if key in item and not isinstance(item[key], str) and not (key in ("over", "suite") and item[key] is None)]
        if wrong:
            raise RecordError(f"{where}: {', '.join(f'{k} must be text, got {item[k]!r}' for k in wrong)}.")
        if item["direction"] not in DIRECTIONS:
            raise RecordError(f"{where}: direction must be one of {DIRECTIONS}, got {item['direction']!r}.")
        for key in ("value", "tolerance"):
            if not isinstance(item[key], int | float) or isinstance(item[key], bool) or not math.isfinite(item[key]):
                raise RecordError(f"{where}: {key} must be a number (a finite one), got {item[key]!r}.")
        if item["tolerance"] < 0:
            raise RecordError(f"{where}: tolerance must be >= 0.")
        if "significance" in item and (not isinstance(item["significance"], bool) or "over" not in item
                                       or item["metric"] not in HEADLINE):
            raise RecordError(f"{where}: significance must be true or false, on a check with 'over' of one of "
                              f"{', '.join(HEADLINE)} (what per-image evidence resamples).")
        checks.append(Check(**{k: item[k] for k in item}))
    return data, checks


def _find(records: list[dict], cell: str, suite: str | None) -> dict | None:
    matches = [r for r in records if r.get("cell") == cell and (suite is None or r.get("suite") == suite)]
    if len(matches) > 1:
        suites = sorted({r.get("suite") for r in matches})
        raise RecordError(f"cell {cell!r} has {len(matches)} records (suites {suites}); add 'suite:' to the check.")
    return matches[0] if matches else None


def _measure(records: list[dict], check: Check, cell: str) -> tuple[dict | None, float | None, str]:
    record = _find(records, cell, check.suite)
    if record is None:
        return None, None, f"no record for cell {cell}"
    if record.get("status") != "ok":
        return None, None, f"cell {cell} {record.get('status')}: {record.get('error')}"
    value = record_value(record, check.metric)
    if value is None:
        return None, None, f"record of {cell} has no metric {check.metric!r}"
    return record, value, ""


def evaluate(records: list[dict], checks: list[Check]) -> list[Outcome]:
    outcomes = []
    for check in checks:
        record, measured, reason = _measure(records, check, check.cell)
        how, claim = "", None
        if measured is not None and check.over:
            over, denominator, reason = _measure(records, check, check.over)
            if over is not None and check.metric in HEADLINE:  # speed ratios have their own pairing
                claim = paired_claim(record, over, check.metric, check.direction)
            if denominator is not None and denominator == 0:
                measured, reason = None, f"{check.over} has {check.metric} = 0; the ratio is undefined"
            else:
                measured, how = (None, "") if over is None else ratio_between(record, over, check.metric)
        if measured is None:
            outcomes.append(Outcome(check, None, False, reason, claim=claim))
            continue
        low, high = check.value - check.tolerance, check.value + check.tolerance
        passed = {"higher": measured >= low, "lower": measured <= high, "equal": low <= measured <= high}[check.direction]
        reason = "" if passed else {"higher": f"below {low:.4g}", "lower": f"above {high:.4g}",
                                    "equal": f"outside [{low:.4g}, {high:.4g}]"}[check.direction]
        if check.significance and passed and not (claim and claim.holds):
            passed, reason = False, f"significance asked: paired bootstrap {claim}"
        outcomes.append(Outcome(check, measured, passed, reason, how, claim))
    return outcomes


def report(outcomes: list[Outcome], only_failures: bool = True) -> str:
    from tabulate import tabulate

    rows: list[list[Any]] = []
    for o in outcomes:
        if only_failures and o.passed:
            continue
        measured = "-" if o.measured is None else f"{o.measured:.4g}" + (f" ({o.how})" if o.how else "")
        rows.append([o.check.name, o.check.metric, measured,
                     f"{o.check.value:.4g}", f"±{o.check.tolerance:.4g}", o.check.direction,
                     "ok" if o.passed else f"FAIL: {o.reason}", o.check.note])
    headers = ["cell", "metric", "measured", "reference", "tolerance", "direction", "result", "note"]
    if not any(row[-1] for row in rows):
        rows, headers = [row[:-1] for row in rows], headers[:-1]
    return tabulate(rows, headers=headers)


def run_check(results_dir: str | Path, reference: str | Path, verbose: bool = False) -> tuple[int, str]:
    """(exit code, report text). Raises RecordError for unusable input (exit 2 at the CLI)."""
    _, checks = load_reference(reference)
    records = load_records(results_dir)
    if not records:
        raise RecordError(f"{results_dir} holds no records; run the suite first.")
    outcomes = evaluate(records, checks)
    failures = [o for o in outcomes if not o.passed]
    summary = f"{len(outcomes) - len(failures)} of {len(outcomes)} reference figures hold ({reference})."
    summary += claims_report([(o.check.name, o.check.metric, o.claim) for o in outcomes if o.claim])
    if failures or verbose:
        return (1 if failures else 0), report(outcomes, only_failures=not verbose) + "\n" + summary
    return 0, summary


def _check_metrics_exist(records: list[dict], metrics: list[str]) -> None:
    """Every metric asked for is in some record: a typo must not make a reference that `check` rejects."""
    import difflib

    from .errors import ConfigError
    from .tables import record_value

    for metric in metrics:
        if not any(record_value(r, metric) is not None for r in records):
            known = sorted({k for r in records for k, v in (r.get("metrics") or {}).items()
                            if isinstance(v, int | float)} | {k for r in records for k in (r.get("speed") or {})})
            close = difflib.get_close_matches(metric, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"--metrics: no record has the metric {metric!r}.{hint} Known: {', '.join(known)}.")


def build_reference(results_dir: str | Path, metrics: list[str], tolerance: float, direction: str,
                    ratios: list[str], name: str, description: str | None = None) -> str:
    """A reference file's text for the ok records under ``results_dir`` (see the `reference` command)."""
    from .errors import ConfigError
    from .tables import ratio_between, record_value

    if not tolerance >= 0:  # NaN too
        raise ConfigError(f"--tolerance {tolerance} must be a number >= 0 (an absolute tolerance per figure).")
    records = [r for r in load_records(results_dir) if r.get("status") == "ok"]
    if not records:
        raise RecordError(f"{results_dir} holds no successful records to make a reference from.")
    _check_metrics_exist(records, metrics)
    checks: list[dict[str, Any]] = []
    for record in records:
        for metric in metrics:
            value = record_value(record, metric)
            if value is not None:
                checks.append({"cell": record["cell"], "metric": metric, "value": round(value, 4),
                               "tolerance": tolerance, "direction": direction})
    by_cell = {r["cell"]: r for r in records}
    for spec in ratios:
        parts = spec.split(":", 5)  # the note, last, may hold colons
        if len(parts) < 3:
            raise ConfigError(f"--ratio {spec!r}: expected CELL:OVER:METRIC[:TOLERANCE[:DIRECTION[:NOTE]]]")
        cell, over, metric = parts[:3]
        try:
            ratio_tolerance = float(parts[3]) if len(parts) > 3 and parts[3] else tolerance
        except ValueError:
            raise ConfigError(f"--ratio {spec!r}: the tolerance {parts[3]!r} is not a number") from None
        if not ratio_tolerance >= 0:
            raise ConfigError(f"--ratio {spec!r}: the tolerance must be >= 0.")
        ratio_direction = parts[4] if len(parts) > 4 and parts[4] else direction
        note = parts[5].strip() if len(parts) > 5 else ""
        if ratio_direction not in DIRECTIONS:
            raise ConfigError(f"--ratio {spec!r}: direction must be one of {', '.join(DIRECTIONS)}")
        if cell not in by_cell or over not in by_cell:
            raise RecordError(f"--ratio {spec!r}: no successful record for {cell if cell not in by_cell else over}.")
        ratio, _ = ratio_between(by_cell[cell], by_cell[over], metric)  # paired where the records allow
        if ratio is None or record_value(by_cell[cell], metric) is None:
            raise RecordError(f"--ratio {spec!r}: the metric {metric!r} is missing or zero.")
        checks.append({"cell": cell, "over": over, "metric": metric, "value": round(ratio, 4),
                       "tolerance": ratio_tolerance, "direction": ratio_direction, **({"note": note} if note else {})})
    if not checks:
        raise ConfigError("the reference would hold no checks: give --metrics or --ratio.")
    first = records[0]
    header = {"reference": name,
              "description": (f"{description.strip()} " if description else "")
              + f"(made by `python -m harness reference` from {len(records)} records)",
              "measured_with": {"profile": sorted({r.get("profile") for r in records}),
                                "suite": sorted({r.get("suite") for r in records}),
                                "git_sha": first["env"].get("git_sha"), "device": first["env"].get("device_name"),
                                "threads": first["env"].get("threads"),
                                "torch": first["env"].get("torch")}}
    lines = [yaml.safe_dump(header, sort_keys=False).rstrip(), "checks:"]
    lines += [f"  - {yaml.safe_dump(c, default_flow_style=True, sort_keys=False, width=10**6).strip()}"
              for c in checks]
    return "\n".join(lines) + "\n"
