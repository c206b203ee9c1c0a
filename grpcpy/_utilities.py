"""What generated *_pb2_grpc.py files import from grpc._utilities."""


def first_version_is_lower(version1, version2):
    """True when version1 < version2, comparing dotted numbers (a
    pre-release tail such as 'rc1' or '.dev0' counts as lower)."""
    return _key(version1) < _key(version2)


def _key(version):
    parts = []
    for piece in version.split("."):
        digits = ""
        for ch in piece:
            if ch.isdigit():
                digits += ch
            else:
                break
        parts.append(int(digits) if digits else 0)
        if digits != piece:
            # e.g. '0rc1' or 'dev0': below the plain release of the same number
            parts.append(-1)
            break
    while len(parts) < 4:
        parts.append(0)
    return tuple(parts)
