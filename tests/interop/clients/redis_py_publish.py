#!/usr/bin/python3
"""Adds one rich entry with redis-py (Debian's python3-redis) for
tests/interop/interop_test.cc: every property field the Redis backend reads
and headers of every kind of bytes a field can hold. Run with Debian's
/usr/bin/python3 (python3-redis lives in its dist-packages).

usage: redis_py_publish.py PORT STREAM
Prints the entry id.
"""
import sys

import redis

port, stream = int(sys.argv[1]), sys.argv[2]
fields = {
    b"data": b"redis\x00py\xff\xfe",
    b"message_type": b"interop.rich",
    b"content_type": b"application/octet-stream",
    b"content_encoding": b"identity",
    b"correlation_id": "corr-\u00fc".encode(),
    b"reply_to": b"replies",
    b"app_id": b"redis-py-interop",
    b"user_id": b"someone",
    b"expiration": b"600000",
    b"message_id": b"redis-py-message-1",
    b"priority": b"7",
    b"timestamp": b"1700000000123",
    b"s_utf8": "h\u00e9llo \u2713 \u65e5\u672c".encode(),
    b"s_nul": b"a\x00b",
    b"b_bin": b"\xff\xfe\x00A",
    b"empty": b"",
    b"i64_min": b"-9223372036854775808",
    b"dec_neg": b"-3.14",
    b"json": b'{"a":[1,null],"b":{"$bytes":"//4="}}',
    b"k\xff\x00": b"binary field name",
    "cl\u00e9".encode(): b"utf-8 field name",
}
client = redis.Redis(host="127.0.0.1", port=port)
entry_id = client.xadd(stream, fields)
print(entry_id.decode())
