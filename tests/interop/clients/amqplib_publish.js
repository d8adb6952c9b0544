#!/usr/bin/env node
// Publishes one rich message with amqplib (npm, installed into
// tests/interop/node_modules by scripts/install-deps) for
// tests/interop/interop_test.cc: every basic property amqplib sends and
// every header type its codec writes, through the {'!': type} notation where
// a JavaScript value does not say the AMQP type. No message_id and no
// timestamp, so the daemon derives the id and records the first-seen time.
//
// usage: amqplib_publish.js AMQP_URL EXCHANGE ROUTING_KEY
'use strict';
const amqp = require('amqplib');

const [url, exchange, routingKey] = process.argv.slice(2);
const headers = {
  s_utf8: 'h\u00e9llo \u2713 \u65e5\u672c',
  s_nul: 'a\u0000b',
  b_bin: Buffer.from([0xff, 0xfe, 0x00, 0x41]),
  t_true: true,
  i8: -5,                                             // 'b' (guessed)
  u8: {'!': 'unsignedbyte', value: 200},              // 'B'
  i16: -30000,                                        // 's' (guessed)
  u16: {'!': 'unsignedshort', value: 60000},          // 'u'
  i32: -100000,                                       // 'I' (guessed)
  u32: {'!': 'unsignedint', value: 4000000000},       // 'i'
  i64: {'!': 'int64', value: -9007199254740991},      // 'l'
  i64_guessed: 9007199254740991,                      // 'l' (guessed)
  f32: {'!': 'float', value: 1.5},                    // 'f'
  f64: -2.25,                                         // 'd' (guessed)
  dec_neg: {'!': 'decimal', value: {places: 2, digits: (-314) >>> 0}},  // 'D', signed
  dec_pos: {'!': 'decimal', value: {places: 2, digits: 12345}},
  ts: {'!': 'timestamp', value: 1700000000},          // 'T'
  void: null,                                         // 'V'
  nested: {level1: {bin: Buffer.from([0xff, 0x00]), n: -1, list: [1, 'two', null]}},  // 'F'
  array: [1, 'two', Buffer.from('bytes'), {k: false}, [null], {'!': 'decimal', value: {places: 1, digits: (-15) >>> 0}}],  // 'A'
};

async function main() {
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  await new Promise((resolve, reject) => {
    channel.publish(exchange, routingKey, Buffer.from([0x6e, 0x6f, 0x64, 0x65, 0x00, 0xc3, 0x28]), {
      contentType: 'application/x-amqplib',
      contentEncoding: 'gzip',
      headers,
      deliveryMode: 2,
      priority: 3,
      correlationId: 'corr-node',
      replyTo: 'node.replies',
      expiration: '600000',
      type: 'interop.rich',
      userId: 'guest',
      appId: 'amqplib-interop',
      mandatory: true,
    }, (err) => (err ? reject(err) : resolve()));
  });
  await channel.close();
  await connection.close();
  console.log('published');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
