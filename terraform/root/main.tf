# The one root module of every environment. An environment is only its
# values (envs/<env>/terraform.tfvars) and where its state lives
# (envs/<env>/backend.hcl): scripts/tf.sh ENV passes both, so dev and prod
# run the same configuration and cannot drift apart (terraform/README.md,
# "One root, one directory of values per environment").

module "tunnel" {
  source = "../modules/tunnel"

  name = var.name
  # cargo lambda build --release --arm64 --output-format zip (just lambda)
  lambda_artifacts_dir = "${path.root}/../../target/lambda"

  routing              = var.routing
  domain_name          = var.domain_name
  route53_zone_id      = var.route53_zone_id
  log_level            = var.log_level
  log_retention_days   = var.log_retention_days
  alarms_enabled       = var.alarms_enabled
  alarm_emails         = var.alarm_emails
  alarm_sns_topic_arn  = var.alarm_sns_topic_arn
  reserved_concurrency = var.reserved_concurrency
  tracing_mode         = var.tracing_mode
  deletion_protection  = var.deletion_protection
}
