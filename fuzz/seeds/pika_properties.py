#!/usr/bin/python3
"""Writes seeds for fuzz/amqp_properties_fuzzer: basic properties as pika
(Debian's python3-pika) encodes them for a content header frame, with every
header type pika writes. Each seed is a mode byte 0 (wire), a frame_max byte
and the encoded properties (flag word and fields).

usage: fuzz/seeds/pika_properties.py OUT_DIR
"""
import datetime
import decimal
import os
import sys

import pika

D = decimal.Decimal
out = sys.argv[1]
headers = {
    "s_utf8": "h\u00e9llo \u2713",
    "s_nul": "a\x00b",
    "b_bin": b"\xff\xfe\x00A",
    "t_true": True,
    "i32_min": -2147483648,
    "i64_max": 9223372036854775807,
    "dec_neg": D("-3.14"),
    "dec_tiny_neg": D("-0.005"),
    "ts": datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc),
    "void": None,
    "nested": {"level1": {"dec": D("-1.5"), "bin": b"\xff\x00", "list": [1, "two", None, True]}},
    "array": [1, -2, "three", b"\xfe", D("2.5"), {"k": False}, [None]],
    "x-retry-attempt": 3,
    "x-delivery-count": 2,
    "x-first-seen-at": "2023-11-14T22:13:20.000Z",
}
seeds = {
    "pika-rich": pika.BasicProperties(
        content_type="application/json", content_encoding="identity", headers=headers,
        delivery_mode=2, priority=7, correlation_id="corr-1", reply_to="replies",
        expiration="600000", message_id="pika-message-1", timestamp=1700000000,
        type="interop.rich", user_id="guest", app_id="pika", cluster_id="cluster-x"),
    "pika-plain": pika.BasicProperties(content_type="text/plain", delivery_mode=1),
    "pika-retry": pika.BasicProperties(headers={"x-retry-attempt": "4",
                                                "x-original-expiration": "5000"}),
    "pika-empty": pika.BasicProperties(),
}
for name, props in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\x00\x10" + b"".join(props.encode()))
