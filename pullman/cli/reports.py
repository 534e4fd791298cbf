"""What ``pullman get`` prints when it is done: per plan, per file, as text or JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pullman.cli.app import echo_json
from pullman.core.plan import FileSpec, Plan
from pullman.core.units import human
from pullman.jobrun import JobResult
from pullman.session import FileReport, PlanReport

if TYPE_CHECKING:
    from pullman.transfer.via_server import ServerPullOutcome


def queued(ids: Sequence[int], refs: Sequence[str], daemon: int | None, as_json: bool) -> None:
    if as_json:
        echo_json([{"id": i, "ref": r, "state": "queued"} for i, r in zip(ids, refs, strict=True)])
        return
    for job_id, ref in zip(ids, refs, strict=True):
        click.echo(f"queued job {job_id}: {ref}")
    if daemon is None:
        click.echo(
            "no pullman daemon is running: start one with `pullman daemon` or "
            "`pullman service install`, or run `pullman get` without --detach"
        )
    else:
        click.echo(f"the daemon (pid {daemon}) runs them; follow with `pullman status --follow`")


def foreground(
    ids: Sequence[int], results: Mapping[int, JobResult], checks: Mapping[str, str], as_json: bool
) -> None:
    done = [r for i in ids if i in results for r in results[i].reports]
    if as_json:
        echo_json([file_json(f) for r in done for f in r.files])
        return
    for report in done:
        plan(report)
        if report.plan.display in checks:
            click.echo(f"  {checks[report.plan.display]}")


def plan(report: PlanReport) -> None:
    p = report.plan
    if p.itemized:
        files(report.files)
        return
    fetched = [f for f in report.files if f.outcome is not None]
    present = sum(f.status == "present" for f in report.files)
    shared = [f for f in report.files if f.shared is not None]
    size = sum(f.size for f in report.files)
    line = f"{p.title}: {len(report.files)} {p.unit} verified, {human(size)}"
    if fetched:
        seconds = max(f.outcome.elapsed for f in fetched if f.outcome is not None)
        line += f"; fetched {human(report.fetched)} in {seconds:.1f} s"
    if present:
        line += f"; {present} already present"
    if shared:
        line += f"; {_shared(shared)}"
    click.echo(line)
    if p.location is not None:
        label, where = p.location
        click.echo(f"  {label}: {where}")


def _shared(reports: Sequence[FileReport]) -> str:
    """``2 linked from other stores (4.1 GiB not fetched)``, and how (cloned, copied)."""
    hows = sorted({r.status for r in reports})
    size = sum(r.size for r in reports)
    return f"{len(reports)} {'/'.join(hows)} from other stores ({human(size)} not fetched)"


def files(reports: Sequence[FileReport]) -> None:
    for r in reports:
        mark = "verified" if r.verified else "unverified: no digest to check against"
        if r.status == "present":
            click.echo(f"already present ({mark}): {r.path}")
            continue
        if r.shared is not None:
            click.echo(f"{r.status} from {r.shared} ({mark}, nothing fetched): {r.path}")
            continue
        o = r.outcome
        assert o is not None
        rate = human(o.fetched / o.elapsed) + "/s" if o.elapsed > 0 else "-"
        click.echo(f"{r.name}: {mark}, {r.digest}")
        detail = f"{human(r.size)} in {o.elapsed:.1f} s ({rate})"
        if o.resumed:
            detail += f", resumed from {human(o.resumed)}"
        detail += f", {o.recycles} recycled, {o.retries} retried"
        click.echo(f"  {detail}")
        click.echo(f"  saved to {r.path}")


def file_json(r: FileReport) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ref": r.ref,
        "name": r.name,
        "path": str(r.path),
        "size": r.size,
        "status": r.status,
        "verified": r.verified,
        "digest": r.digest,
    }
    if r.shared is not None:
        doc.update(shared_from=str(r.shared), links=_links(r.path))
    if r.outcome is not None:
        o = r.outcome
        doc.update(
            sha256=o.sha256,
            fetched=o.fetched,
            resumed=o.resumed,
            elapsed=round(o.elapsed, 3),
            tail_seconds=round(o.tail, 3),
            recycles=o.recycles,
            retries=o.retries,
            discarded=o.discarded,
        )
    return doc


def _links(path: Path) -> int | None:
    """How many names the file has (a file shared by three apps: 3)."""
    try:
        return path.stat().st_nlink
    except OSError:
        return None


def via_server(outcome: ServerPullOutcome) -> None:
    name = outcome.model
    click.echo(
        f"{name}: pulled by the Ollama server in {outcome.elapsed:.1f} s, "
        f"{outcome.restarts} restarts\n  ready: ollama run {name}"
    )


def via_server_json(outcomes: Sequence[ServerPullOutcome]) -> None:
    echo_json(
        [
            {
                "ref": o.model,
                "elapsed": round(o.elapsed, 3),
                "restarts": o.restarts,
                "failures": o.failures,
                "size": o.total_bytes,
            }
            for o in outcomes
        ]
    )


def paths(ids: Sequence[int], results: Mapping[int, JobResult]) -> None:
    """``-q``: only where each result is, one path per line (for scripts)."""
    for report in (r for i in ids if i in results for r in results[i].reports):
        if report.plan.itemized:
            for f in report.files:
                click.echo(str(f.path))
        elif report.plan.location is not None:
            click.echo(str(report.plan.location[1]))


def dry_run(plans: Sequence[Plan], as_json: bool) -> None:
    """``--dry-run``: each ref's files, sizes, and where they would land."""
    if as_json:
        echo_json([_plan_json(p) for p in plans])
        return
    for p in plans:
        where = f" -> {p.location[1]}" if p.location is not None else ""
        click.echo(f"{p.title}: {len(p.files)} {p.unit}, {human(p.total_size)}{where}")
        for spec in p.files:
            there = " (already there)" if _there(spec) else ""
            click.echo(f"  {spec.name}  {human(spec.size or 0)}  {spec.final or spec.dest}{there}")


def _there(spec: FileSpec) -> bool:
    return any(place.is_file() and place.stat().st_size == spec.size for place in spec.places)


def _plan_json(p: Plan) -> dict[str, Any]:
    return {
        "ref": p.ref,
        "title": p.title,
        "store": p.store.value,
        "location": str(p.location[1]) if p.location is not None else None,
        "size": p.total_size,
        "note": p.note,
        "files": [
            {
                "name": s.name,
                "size": s.size,
                "digest": str(s.digest) if s.digest else None,
                "dest": str(s.final or s.dest),
                "present": _there(s),
            }
            for s in p.files
        ],
    }
