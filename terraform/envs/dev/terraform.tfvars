# Development: path routing on the execute-api URL, no alarms (zero idle cost).
# Only values live here; the configuration is terraform/root, shared by every
# environment (scripts/tf.sh dev plan|apply).
environment        = "dev"
region             = "eu-west-1"
name               = "tunnel-dev"
log_level          = "info,handlers=debug"
log_retention_days = 7
alarms_enabled     = false

# No reservations in dev: new accounts often have a concurrency quota of 10,
# below what the module's defaults need (85 reserved + 100 unreserved). The
# local stack reads this too (integration-tests/src/concurrency.rs): its
# functions stay unreserved there as well.
reserved_concurrency = {}

# Path routing: every tunnel on ONE browser origin (a tunnel's page can read
# another's responses and cookies). Fine for one developer; for a team, use
# host routing with a custom domain instead (see terraform/README.md, Routing):
routing = "path"
# routing         = "host"
# domain_name     = "dev.tunnel.example.com"
# route53_zone_id = "Z0123456789ABCDEFGHIJ"
