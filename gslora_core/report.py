"""Forgetting reports as people read them: a Markdown page per session (or CLI run).

The JSON report is the record; this page is a faithful rendering of it, so the numbers on screen,
in the exported Markdown and from ``python -m gslora_core report`` are the same numbers."""
from __future__ import annotations

from typing import NamedTuple, Sequence


def pct(value: float | None) -> str:
    """A fraction as a percentage, or a dash where it does not apply (no such identities)."""
    return "–" if value is None else f"{100 * value:.1f} %"


def num(value: float | None) -> str:
    """A score with two decimals, or a dash where it was not measured."""
    return "–" if value is None else f"{value:.2f}"


def duration(seconds: float) -> str:
    """"8 s", "3 min 10 s": a time a visitor reads at a glance."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def seconds_left(done: float, total: float, elapsed: float) -> float | None:
    """The time still to go at the rate so far; None before the first unit is done or at the
    end (no rate to go by, nothing left)."""
    if done <= 0 or total <= done or elapsed <= 0:
        return None
    return elapsed * (total - done) / done


def time_left(done: float, total: float, elapsed: float) -> str:
    """"about 40 s left" at the rate so far, or "" (see ``seconds_left``)."""
    left = seconds_left(done, total, elapsed)
    return "" if left is None else f"about {duration(left)} left"


def without_curve(report: dict) -> dict:
    """The report without the per-step curve (which stays in the JSON file)."""
    return {k: v for k, v in report.items() if k != "curve"}


def task_norms(report: dict) -> list[float]:
    """The LoRA group norms (one per block) of the report's own task."""
    return report["group_norms"][report["task_names"].index(report["task"])]


def blocks_used(norms: Sequence[float]) -> list[int]:
    """The blocks (1-based) a task changed: those whose group is not exactly zero."""
    return [i + 1 for i, n in enumerate(norms) if n != 0.0]


def blocks_text(norms: Sequence[float]) -> str:
    """Which blocks a task changed, by number, and of how many: "block 6 of 6", "blocks 5, 6
    of 6", "none of 6" (a bare "6" read as a count of blocks)."""
    used = blocks_used(norms)
    which = (f"block{'s' if len(used) > 1 else ''} {', '.join(map(str, used))}" if used
             else "none")
    return f"{which} of {len(norms)}"


def membership_cell(result: dict | None) -> str:
    """The attack's member rate, or why it says nothing: an attack that cannot tell the retained
    people's training pictures from their test pictures (no power) gets no number."""
    if not result:
        return "–"
    power = result.get("power")
    if not power:
        return "too few pictures"
    if not result.get("has_power"):
        return f"no power (AUC {power['auc']:.2f})"
    return f"{pct(result['member_rate'])} (AUC {power['auc']:.2f})"


COMPARISON_HEADERS = ["way to forget", "seconds", "Acc_r", "Acc_f",
                      "forgotten: same-person pairs still match",
                      "forgotten: nearest training picture is their own",
                      "Acc_f after relearning from 1 / 2 / 4 pictures"]
METHOD_LABELS = {"delete": "delete (drop their head rows)", "gslora": "GS-LoRA (your tasks)",
                 "retrain": "retrain without them"}


def comparison_rows(methods: Sequence[dict]) -> list[list[str]]:
    """``probes.compare``'s rows as the page's table (the JSON has every number)."""
    rows = []
    for m in methods:
        rec = m["recognizable"]
        back = " / ".join(pct(r["acc_f"]) for r in m["relearn"] if r["shots"] > 0)
        rows.append([METHOD_LABELS.get(m["method"], m["method"]),
                     "–" if m["seconds"] is None else f"{m['seconds']:.1f}",
                     pct(m["acc_r"]), pct(m["acc_f"]),
                     f"{pct(rec['forgotten_same_match'])} of {rec['forgotten_pairs']}",
                     pct(rec["forgotten_nn_identification"]), back])
    return rows


class Nouns(NamedTuple):
    """How a gallery's classes are named; unpacks as (one, many)."""

    one: str
    many: str

    @property
    def faces(self) -> bool:
        return self.one == "person"

    @property
    def owners(self) -> str:
        """"people's" / "classes'"."""
        return "people's" if self.faces else "classes'"

    @property
    def pictures(self) -> str:
        """What a forgotten picture shows: "faces" / "pictures"."""
        return "faces" if self.faces else "pictures"

    @property
    def other(self) -> str:
        """Whom a forgotten picture can be taken for: "someone else" / "another class"."""
        return "someone else" if self.faces else "another class"


def nouns(kind: str | None) -> Nouns:
    """How a gallery's classes are named, by ``Recognizer.kind``: ("class", "classes") for
    objects, else ("person", "people")."""
    return Nouns("class", "classes") if kind == "objects" else Nouns("person", "people")


def metric_rows(report: dict) -> list[list[str]]:
    """[metric, before, after] rows of one task, in the paper's names."""
    words = nouns(report.get("kind"))
    many = words.many
    return [
        [f"Acc_r (retained {many})", pct(report["acc_r_before"]), pct(report["acc_r_after"])],
        [f"Acc_f ({many} forgotten now)", pct(report["acc_f_before"]),
         pct(report["acc_f_after"])],
        ["Acc_o (forgotten in earlier tasks)", pct(report.get("acc_o_before")),
         pct(report.get("acc_o_after"))],
        ["H-Mean (Acc_r after, Acc_f drop)", "", f"{100 * report['h_mean']:.1f}"],
        [f"membership attack: forgotten {words.owners} training pictures called members",
         membership_cell(report.get("membership_before")),
         membership_cell(report.get("membership_after"))],
        [f"forgotten {words.pictures}: cosine to their old class centre",
         num(report.get("forgotten_cos_to_prototype_before")),
         num(report.get("forgotten_cos_to_prototype_after"))],
        *threshold_rows(report.get("open_set") or {}, words),
    ]


def threshold_rows(open_set: dict, words: Nouns = nouns("faces")) -> list[list[str]]:
    """[metric, before, after] rows of the answers at the recognizer's threshold."""
    if not open_set:
        return []
    tau = f"{open_set['threshold']:.2f}"
    f, r = open_set["forgotten"], open_set["retained"]
    many = words.many
    return [
        [f"retained {many} recognized at the threshold (cosine ≥ {tau})",
         pct(r["before"]["recognized"]), pct(r["after"]["recognized"])],
        [f"forgotten {many}: answered \"not recognized\"", pct(f["before"]["unknown"]),
         pct(f["after"]["unknown"])],
        [f"forgotten {many}: taken for {words.other}", pct(f["before"]["other"]),
         pct(f["after"]["other"])],
    ]


def upper_first(text: str) -> str:
    """A phrase as a sentence's start (``str.capitalize`` would lower every name in it)."""
    return text[:1].upper() + text[1:]


def forgotten_line(report: dict) -> str:
    """What the forgotten people's held-back pictures are answered now, counted in pictures:
    "of the 8 held-back pictures of the forgotten people, 0 still named as themselves, 8
    answered "not recognized", 0 taken for someone else". (Pictures, not people: a person with one
    picture of 13 still named is neither "forgotten" nor "not", and the task's stop says
    what happened on its training pictures, a different count.)"""
    words = nouns(report.get("kind"))
    f = (report.get("open_set") or {}).get("forgotten", {}).get("after")
    if not f or not f["pictures"]:  # a report without open-set answers: by person
        rows = [r for r in report.get("per_identity", []) if r["role"] == "forgotten"]
        gone = sum(1 for r in rows if r["after"] is not None and r["after"] == 0.0)
        return f"{gone} of {len(rows)} forgotten {words.many} never named as themselves"
    n = f["pictures"]
    unknown, other = round(f["unknown"] * n), round(f["other"] * n)
    return (f"of the {n} held-back pictures of the forgotten {words.many}, "
            f"{n - unknown - other} still named as themselves, {unknown} answered \"not "
            f"recognized\", {other} taken for {words.other}")


def task_summary(report: dict) -> str:
    """One line: how the task ended and what it cost."""
    stop = report.get("stop") or {}
    ended = f"{stop['text']}; " if stop.get("text") else ""
    return (f"{ended}{report['seconds']:.1f} s on {report.get('device', '?')}, "
            f"{report['trainable_params']:,} trainable parameters "
            f"({100 * report['trainable_share']:.1f} % of the model), "
            f"{report['zero_groups']} of {len(task_norms(report))} LoRA groups exactly zero "
            f"(changed: {blocks_text(task_norms(report))})")


def to_markdown(reports: Sequence[dict], title: str = "GS-LoRA forgetting report") -> str:
    """Every task of a session, in order: metrics before/after, cost, groups, per identity."""
    lines = [f"# {title}", ""]
    if not reports:
        return "\n".join(lines + ["No forgetting task has been run.", ""])
    lines += ["Accuracy: argmax of cosine similarity on each identity's held-back test pictures.",
              ""]
    for rep in reports:
        lines += [f"## {rep['task']}: forget {', '.join(rep['forgotten'])}", "",
                  task_summary(rep) + ".", "", "| metric | before | after |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in metric_rows(rep)]
        norms = task_norms(rep)
        lines += ["", "LoRA group norms, block 1 → " + str(len(norms)) + ": "
                  + ", ".join("0" if n == 0.0 else f"{n:.3g}" for n in norms), "",
                  f"| {'identity' if nouns(rep.get('kind')).faces else 'class'} | role | before "
                  "| after |", "|---|---|---|---|"]
        lines += [f"| {r['identity']} | {r['role']} | {pct(r['before'])} | {pct(r['after'])} |"
                  for r in rep["per_identity"]]
        cfg = rep.get("config", {})
        lines += ["", forgotten_line(rep) + "."]
        shown = ("schedule", "rank", "beta", "bnd", "margin", "keep", "steps", "lr", "shots",
                 "prototype_weight")
        lines += ["", "Settings: " + ", ".join(f"{k} {cfg[k]}" for k in shown if k in cfg), ""]
    return "\n".join(lines)
