"""The one exception type of the package, rendered as one line like the Swift tool's errors:
``FILE: at byte 123, tensor "x": message``."""


class MTLModelError(Exception):
    """What went wrong, where.

    ``code`` is one of ``malformed`` (not a well-formed file of its kind), ``unsupported``
    (newer than this reader), ``invalid_config``, ``invalid_argument`` and ``io``: the same
    codes as the Swift library's ``MTLModelError.Code``.
    """

    def __init__(self, code, message, file=None, offset=None, tensor=None, key=None):
        self.code = code
        self.message = message
        self.file = file
        self.offset = offset
        self.tensor = tensor
        self.key = key
        super().__init__(str(self))

    def in_file(self, path):
        """The same error naming ``path`` when it named no file yet."""
        if self.file is None:
            self.file = str(path)
            self.args = (str(self),)
        return self

    def __str__(self):
        parts = []
        if self.file is not None:
            parts.append(_escaped(self.file))
        place = []
        if self.offset is not None:
            place.append("at byte %d" % self.offset)
        if self.tensor is not None:
            place.append('tensor "%s"' % _escaped(self.tensor))
        if self.key is not None:
            place.append('key "%s"' % _escaped(self.key))
        if place:
            parts.append(", ".join(place))
        parts.append(self.message)
        return ": ".join(parts)


def malformed(message, offset=None, tensor=None):
    return MTLModelError("malformed", message, offset=offset, tensor=tensor)


def config_error(key, message):
    return MTLModelError("invalid_config", message, key=key)


def _escaped(text):
    # A name from a hostile file must not move the cursor or ring the bell of the terminal.
    return "".join(ch if ch.isprintable() else "\\x%02x" % ord(ch) if ord(ch) < 256 else "\\u%04x" % ord(ch)
                   for ch in str(text))
