"""The pre-parse limiter cuts hostile messages before any parser sees them."""

from mailsync_ingest.limits import Limits, inspect_message, limit_addresses

PLAIN = b"From: a@client.test\r\nSubject: hi\r\n\r\nbody\r\n"


def multipart(parts: int) -> bytes:
    lines = [b'Content-Type: multipart/mixed; boundary="b1"', b"", b"preamble"]
    for number in range(parts):
        lines += [b"--b1", b"Content-Type: text/plain", b"", b"part %d" % number]
    lines += [b"--b1--", b""]
    return b"\r\n".join(lines)


def nested(depth: int) -> bytes:
    lines: list[bytes] = []
    for level in range(depth):
        lines += [b'Content-Type: multipart/mixed; boundary="n%d"' % level, b"", b"--n%d" % level]
    lines += [b"Content-Type: text/plain", b"", b"deep"]
    for level in reversed(range(depth)):
        lines.append(b"--n%d--" % level)
    return b"\r\n".join(lines)


def test_ordinary_message_passes_untouched() -> None:
    inspection = inspect_message(PLAIN, Limits())
    assert inspection.data == PLAIN
    assert inspection.header_block == b"From: a@client.test\r\nSubject: hi\r\n\r\n"
    assert inspection.defects == ()
    assert not inspection.truncated


def test_oversized_message_is_truncated_and_recorded() -> None:
    raw = PLAIN + b"x" * 5000
    inspection = inspect_message(raw, Limits(max_bytes=1024))
    assert len(inspection.data) == 1024
    assert inspection.truncated
    assert inspection.original_size == len(raw)
    assert inspection.defects == ("body_truncated",)


def test_a_huge_header_block_is_kept_whole_for_the_header_reader() -> None:
    raw = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"y" * 60) for n in range(100)) + b"\r\nbody"
    inspection = inspect_message(raw, Limits(max_header_bytes=1000))
    assert inspection.header_block == raw[: -len(b"body")]
    assert inspection.defects == ()


def test_parts_over_the_limit_are_cut_off() -> None:
    raw = multipart(50)
    inspection = inspect_message(raw, Limits(max_parts=10))
    assert b"part 9" in inspection.data
    assert b"part 10" not in inspection.data
    assert inspection.defects == ("too_many_parts",)
    assert inspect_message(multipart(10), Limits(max_parts=10)).defects == ()


def test_delimiter_lines_without_a_declared_boundary_are_no_parts() -> None:
    raw = PLAIN + b"".join(b"--b1\r\ntext %d\r\n" % n for n in range(50))
    assert inspect_message(raw, Limits(max_parts=10)).data == raw
    declared = raw.replace(b"Subject: hi", b'Content-Type: multipart/mixed; BOUNDARY="b1"')
    assert inspect_message(declared, Limits(max_parts=10)).defects == ("too_many_parts",)


def test_nesting_deeper_than_the_limit_is_cut_off() -> None:
    raw = nested(100)
    inspection = inspect_message(raw, Limits(max_depth=20))
    assert b'boundary="n19"' in inspection.data
    assert b'boundary="n20"' not in inspection.data
    assert inspection.defects == ("nesting_too_deep",)
    assert inspect_message(nested(20), Limits(max_depth=20)).defects == ()


def test_closed_siblings_do_not_count_as_depth() -> None:
    siblings = [
        b'Content-Type: multipart/mixed; boundary="outer"',
        b"",
    ]
    for number in range(40):
        siblings += [
            b"--outer",
            b'Content-Type: multipart/alternative; boundary="inner%d"' % number,
            b"",
            b"--inner%d" % number,
            b"Content-Type: text/plain",
            b"",
            b"text",
            b"--inner%d--" % number,
        ]
    siblings.append(b"--outer--")
    inspection = inspect_message(b"\r\n".join(siblings), Limits(max_depth=3))
    assert inspection.defects == ()


def test_address_list_is_cut_after_the_limit() -> None:
    value = ", ".join(f"p{n}@client.test" for n in range(20_000))
    cut, was_cut = limit_addresses(value, 1000)
    assert was_cut
    assert cut.count("@") == 1000
    assert limit_addresses("a@b.test, c@d.test", 1000) == ("a@b.test, c@d.test", False)
