# Production. No secrets in this file.
region              = "eu-west-1"
name                = "tunnel-prod"
log_level           = "info"
log_retention_days  = 30
alarms_enabled      = true
deletion_protection = true

# alarm_sns_topic_arn = "arn:aws:sns:eu-west-1:123456789012:tunnel-alarms"

# Path routing: every tunnel on ONE browser origin, so for a single user or
# mutually trusting ones. Shared by several users, serve each tunnel on its
# own host instead: drop this line and set the custom domain below
# (https://<subdomain>.tunnel.example.com; see terraform/README.md, Routing).
routing = "path"
# domain_name     = "tunnel.example.com"
# route53_zone_id = "Z0123456789ABCDEFGHIJ"

# Unset: the module's defaults (forwarding capped at 50, capacity reserved
# for connect, response and disconnect; see terraform/README.md, Limits).
# reserved_concurrency = { forwarding = 100, response = 50, connect = 5, disconnect = 5 }
