// Checking an AMQP URL without the AMQP client library, so that what reads
// the config (foxworkerd --check-config, foxworkerctl) needs no broker client.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_AMQP_URL_H_
#define FOXWORKER_BACKENDS_RABBITMQ_AMQP_URL_H_

#include <string_view>

namespace foxworker {

// Whether librabbitmq-c's amqp_parse_url() accepts `url`: amqp:// or
// amqps://, then [user[:password]@]host[:port][/vhost] where host may be an
// [IPv6] literal, each part percent-encoded (a '%' must start a valid
// escape), the port a decimal number below 65536, and the vhost a single
// segment.
bool IsValidAmqpUrl(std::string_view url);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_AMQP_URL_H_
