# The HS256 secret agents' tokens are signed with: an SSM SecureString the
# connect function reads at cold start and again every
# AUTH_SECRET_REFRESH_SECONDS (60 s by default).
#
# Terraform creates the parameter with a placeholder and never manages its
# value afterwards (ignore_changes), so the real secret is never in the
# state or a plan. Set it once after the first apply:
#
#   aws ssm put-parameter --overwrite --type SecureString \
#     --name "$(terraform output -raw auth_secret_parameter)" \
#     --value "$(openssl rand -base64 48)"
#
# The placeholder can never sign a token: it starts with "UNSET:", which the
# connect function refuses whatever follows (handlers::config::signing_secret,
# PLACEHOLDER_MARKERS), and it is shorter than the 32 bytes a secret needs.
# terraform/checks feeds this very value to that function on every
# cargo test. Until the real secret is set, connect refuses every agent with
# 503 and logs why at ERROR; once it is set, it takes effect within the
# refresh interval, without a redeploy.

resource "aws_ssm_parameter" "this" {
  #checkov:skip=CKV_AWS_337:Encrypted with the AWS managed aws/ssm key: free, and the connect function needs no kms:Decrypt grant or key policy (a customer managed key would need a kms:Decrypt grant and key policy)
  name        = var.name
  description = "HS256 secret for serverless-tunnel agent tokens (set with aws ssm put-parameter --overwrite; see terraform/README.md)"
  type        = "SecureString"
  value       = "UNSET: see terraform/README.md"
  tags        = var.tags

  lifecycle {
    # The real value is set out of band and must never be overwritten or
    # read into the state by a later apply.
    ignore_changes = [value]
  }
}
