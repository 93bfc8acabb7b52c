"""The decisions an autoregressive controller makes, one per step."""

import dataclasses
import numbers

CATEGORICAL = "categorical"
SKIP = "skip"
PICK = "pick"
ANCHOR = "anchor"
KINDS = (CATEGORICAL, SKIP, PICK, ANCHOR)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One step of the controller.

    Kinds:
        - `"categorical"`: one of `size` choices, from a softmax head shared by
          every decision with the same `key`.
        - `"skip"`: a subset of the earlier positions `0 .. size-1` of `group`,
          each kept with probability `sigmoid(v^T tanh(W_prev h_j + W_curr h))`
          (set-selection attention of Zoph & Le, 2017).
        - `"pick"`: one of the earlier positions `0 .. size-1` of `group`, by
          softmax over the same attention scores (ENAS cells).
        - `"anchor"`: no choice; only records a hidden state for a position
          that later attention decisions look back at.

    Args:
        name: unique name, usually the hyperparameter it decides.
        kind: one of `"categorical"`, `"skip"`, `"pick"`, `"anchor"`.
        size: number of choices (categorical) or of earlier positions (skip, pick).
        key: decisions with the same key share their softmax head and embedding.
        group: the sequence of positions an attention decision or anchor refers to.
        anchor: the position whose anchor this step records (its hidden state),
            or `None`.

    Example:

    >>> Decision("layers[0].op", "categorical", size=6, key="layers.op").width
    1
    """

    name: str
    kind: str
    size: int = 0
    key: str = ""
    group: str = ""
    anchor: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Decision {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}.")
        if not isinstance(self.size, numbers.Integral) or isinstance(self.size, bool):
            raise ValueError(f"Decision {self.name!r}: `size` must be an int, got {self.size!r}.")
        if self.anchor is not None and (not isinstance(self.anchor, numbers.Integral) or self.anchor < 0):
            raise ValueError(f"Decision {self.name!r}: `anchor` must be a position >= 0, got {self.anchor!r}.")
        if self.kind == CATEGORICAL and self.size < 1:
            raise ValueError(f"Decision {self.name!r}: a categorical decision needs at least 1 choice, got size={self.size}.")
        if self.kind == PICK and self.size < 1:
            raise ValueError(f"Decision {self.name!r}: a pick decision needs at least 1 earlier position, got size={self.size}.")
        if self.kind in (SKIP, PICK, ANCHOR) and not self.group:
            raise ValueError(f"Decision {self.name!r}: kind {self.kind!r} needs a group.")
        if self.kind == ANCHOR and self.anchor is None:
            raise ValueError(f"Decision {self.name!r}: an anchor decision needs an anchor position.")
        if self.anchor is not None and not self.group:
            raise ValueError(f"Decision {self.name!r}: recording anchor {self.anchor} needs a group.")
        if not self.key:
            object.__setattr__(self, "key", self.name)

    @property
    def chooses(self):
        """Whether the step makes a choice: an anchor does not, nor a skip step with no earlier position."""
        return not (self.kind == ANCHOR or (self.kind == SKIP and self.size == 0))

    @property
    def width(self):
        """How many integers encode this decision's action."""
        return self.size if self.kind == SKIP else 1

    @property
    def head(self):
        """Name of the softmax head (categorical decisions only)."""
        return f"{self.key}#{self.size}"
