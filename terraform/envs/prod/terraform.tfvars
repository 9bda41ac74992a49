# Production. No secrets in this file. Only values live here; the
# configuration is terraform/root, shared by every environment.
environment         = "prod"
region              = "eu-west-1"
name                = "tunnel-prod"
log_level           = "info"
log_retention_days  = 30
alarms_enabled      = true
deletion_protection = true

# Who the alarms notify: each address gets a confirmation email from SNS
# once. Empty, the plan warns that the alarms notify nobody.
alarm_emails = []
# alarm_emails = ["oncall@example.com"]

# Path routing: every tunnel on ONE browser origin, so for a single user or
# mutually trusting ones. Shared by several users, serve each tunnel on its
# own host instead: drop this line and set the custom domain below
# (https://<subdomain>.tunnel.example.com; see terraform/README.md, Routing).
routing = "path"
# domain_name     = "tunnel.example.com"
# route53_zone_id = "Z0123456789ABCDEFGHIJ"

# Unset: the module's defaults (forwarding capped at 50, capacity reserved
# for connect, response and disconnect; see terraform/README.md, Limits).
# The plan stops, before creating anything, on an account whose Lambda
# concurrency quota is below 185 and says what to request.
# reserved_concurrency = { forwarding = 100, response = 50, connect = 5, disconnect = 5 }
