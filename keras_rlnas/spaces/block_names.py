"""Layer names of an ENAS space's blocks: one template per kind, formatted and parsed.

A standalone child and the supernet of its space hold layers of the same
names, and a supernet copies its weights into a child by name. Each ENAS
space keeps its name templates in one `BlockNames`; the child builder and
the supernet both go through it, so no name format is written twice.
"""

import re

_FIELD = re.compile(r"\{(\w+)\}")


class BlockNames:
    """Formats layer names from templates, and parses them back.

    A template is a `str.format` pattern. Its `op` field is one of the
    space's op names; every other field is a non-negative int.

    Args:
        ops: the op names the `op` field may hold.
        **templates: one `kind=template` per kind of block.

    Example:

    >>> names = BlockNames(("conv3x3", "maxpool3x3"), op="layer{layer}_{op}", norm="layer{layer}_bn")
    >>> names.format("op", layer=2, op="conv3x3")
    'layer2_conv3x3'
    >>> names.parse("layer2_conv3x3")
    ('op', {'layer': 2, 'op': 'conv3x3'})
    >>> names.parse("layer2_bn")
    ('norm', {'layer': 2})
    >>> names.parse("head_dense") is None
    True
    """

    def __init__(self, ops, **templates):
        self.ops = tuple(ops)
        self.templates = dict(templates)
        # Longest op first, so that an op that prefixes another cannot cut it short.
        op_pattern = "|".join(re.escape(op) for op in sorted(self.ops, key=len, reverse=True))
        self._patterns = {kind: _pattern(template, op_pattern) for kind, template in self.templates.items()}

    def format(self, kind, **fields):
        """The layer name of block `kind` with `fields`.

        Args:
            kind: one of the kinds given to the constructor.
            **fields: the fields of the kind's template.

        Returns:
            The name, a str.
        """
        if kind not in self.templates:
            raise ValueError(f"`kind` must be one of {sorted(self.templates)}, got {kind!r}.")
        if "op" in fields and fields["op"] not in self.ops:
            raise ValueError(f"`op` must be one of {self.ops}, got {fields['op']!r}.")
        try:
            return self.templates[kind].format(**fields)
        except KeyError as missing:
            raise ValueError(f"Block kind {kind!r} needs the field {missing}; got {sorted(fields)}.") from None

    def parse(self, name):
        """`(kind, fields)` of a name made by `format`, or `None` for any other name."""
        for kind, pattern in self._patterns.items():
            match = pattern.fullmatch(name)
            if match is not None:
                fields = match.groupdict()
                return kind, {field: value if field == "op" else int(value) for field, value in fields.items()}
        return None


def _pattern(template, op_pattern):
    parts = _FIELD.split(template)  # literal, field, literal, field, ..., literal
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>{op_pattern if part == 'op' else '[0-9]+'})"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)
