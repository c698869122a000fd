"""Open-set answers: a recognizer names a person only when the cosine clears a threshold.

Face recognition is open-set: a deployed recognizer answers "not recognized" for a face that is
not close enough to anyone it knows. After forgetting, a forgotten person must come out
*unknown*; a forgotten face matched to *another* person is a false match, a harm of its own.

The threshold ``tau`` is fixed once per recognizer (at enrollment, kept in the checkpoint) on
the people it knows: the lowest own-class cosine that still keeps ``keep`` of their correctly
recognized held-back pictures (validation pictures where the gallery has them, else test). It
is a true-accept rule, so the retained people stay recognized; the false-accept rate it implies
for a stranger (a picture scored against everyone but its own person) is measured and reported.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

UNKNOWN = "not recognized"
EDGE = 1e-4  # cosine a threshold sits below the picture that fixes it


@dataclass(frozen=True)
class Threshold:
    """A recognizer's operating point (stored in its checkpoint)."""

    tau: float  # answers with a best cosine below this are "not recognized"
    keep: float  # share of correct held-back answers the rule keeps
    part: str  # which pictures fixed it: "validation" or "test"
    pictures: int  # how many
    false_accept: float  # share of those pictures a stranger-like answer would pass (see module)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Threshold":
        return cls(**{k: data[k] for k in ("tau", "keep", "part", "pictures", "false_accept")})


def own_and_other(cos: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per picture: the cosine to its own person and the best cosine to anyone else."""
    own = cos.gather(1, labels[:, None]).squeeze(1)
    other = cos.scatter(1, labels[:, None], float("-inf")).max(1).values
    return own, other


def calibrate(cos: torch.Tensor, labels: torch.Tensor, classes: Sequence[int], part: str,
              keep: float = 0.99) -> Threshold:
    """The threshold keeping ``keep`` of the correct answers on pictures of ``classes``.

    ``cos``: (pictures, classes) cosines of held-back pictures; ``labels`` their people."""
    if not 0 < keep <= 1:
        raise ValueError("keep must be in (0, 1]")
    mask = torch.isin(labels, torch.as_tensor(list(classes), dtype=labels.dtype))
    cos, labels = cos[mask], labels[mask]
    own, other = own_and_other(cos, labels)
    correct = own > other
    if int(correct.sum()) == 0:
        raise ValueError("no held-back picture is recognized: a threshold cannot be fixed")
    # Just below the kept pictures' lowest own cosine: the picture that sets the threshold is
    # kept, whichever order of float operations (a batch, the cached states) scores it later.
    tau = float(torch.quantile(own[correct].double(), 1 - keep, interpolation="lower")) - EDGE
    return Threshold(tau=tau, keep=keep, part=part, pictures=int(len(labels)),
                     false_accept=float((other >= tau).double().mean()))


def answer(cos: torch.Tensor, tau: float) -> torch.Tensor:
    """Per picture the answered class, or -1 for "not recognized"."""
    best, pred = cos.max(1)
    return torch.where(best >= tau, pred, torch.full_like(pred, -1))


def rates(cos: torch.Tensor, labels: torch.Tensor, classes: Sequence[int],
          tau: float) -> dict[str, float | int | None]:
    """On the pictures of ``classes``: the shares recognized as themselves, answered "not
    recognized", and taken for another person, at ``tau`` (None without pictures)."""
    mask = torch.isin(labels, torch.as_tensor(list(classes), dtype=labels.dtype))
    n = int(mask.sum())
    if n == 0:
        return {"pictures": 0, "recognized": None, "unknown": None, "other": None}
    ans, y = answer(cos[mask], tau), labels[mask]
    return {"pictures": n, "recognized": int((ans == y).sum()) / n,
            "unknown": int((ans == -1).sum()) / n,
            "other": int(((ans != -1) & (ans != y)).sum()) / n}
