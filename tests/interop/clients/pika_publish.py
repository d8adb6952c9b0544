#!/usr/bin/python3
"""Publishes one rich message with pika (Debian's python3-pika) for
tests/interop/interop_test.cc: every basic property and every header type
pika can encode. Run with Debian's /usr/bin/python3 (python3-pika lives in
its dist-packages).

usage: pika_publish.py AMQP_URL EXCHANGE ROUTING_KEY
"""
import datetime
import decimal
import sys

import pika

url, exchange, routing_key = sys.argv[1:4]
D = decimal.Decimal
headers = {
    "s_utf8": "h\u00e9llo \u2713 \u65e5\u672c",       # 'S'
    "s_nul": "a\x00b",                                  # 'S' with a NUL
    "s_empty": "",
    "b_bin": b"\xff\xfe\x00A",                          # 'x', not UTF-8
    "b_text": b"plain bytes",                           # 'x', valid UTF-8
    "t_true": True,                                     # 't'
    "t_false": False,
    "i32_pos": 42,                                      # 'I'
    "i32_min": -2147483648,
    "i64_max": 9223372036854775807,                     # 'l'
    "i64_min": -9223372036854775808,
    "dec_neg": D("-3.14"),                              # 'D'
    "dec_pos": D("123.45"),
    "dec_tiny_neg": D("-0.005"),
    "dec_int": D("-7"),
    "ts": datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc),  # 'T'
    "void": None,                                       # 'V'
    "nested": {                                         # 'F'
        "level1": {"level2": {"dec": D("-1.5"), "bin": b"\xff\x00", "list": [1, "two", None, True]}},
        "s": "x\u00e9",
    },
    "array": [1, -2, "three", b"\xfe", D("2.5"), {"k": False}, [None], 9223372036854775807],  # 'A'
    "empty_table": {},
    "empty_array": [],
    "cl\u00e9": "utf-8 key",
}
props = pika.BasicProperties(
    content_type="application/x-foxworker; charset=binary",
    content_encoding="identity",
    headers=headers,
    delivery_mode=2,
    priority=7,
    correlation_id="corr-\u00fc-1",
    reply_to="replies",
    expiration="600000",
    message_id="pika-message-1",
    timestamp=1700000000,
    type="interop.rich",
    user_id="guest",
    app_id="pika-interop",
    cluster_id="cluster-x",
)
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()
channel.basic_publish(exchange=exchange, routing_key=routing_key,
                      body=b"pika\x00body\xff\xfe", properties=props, mandatory=True)
connection.close()
print("published")
