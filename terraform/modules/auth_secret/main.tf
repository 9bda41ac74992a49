# The HS256 secret agents' tokens are signed with: an SSM SecureString the
# connect function reads at cold start and again every
# AUTH_SECRET_REFRESH_SECONDS (60 s by default).
#
# The secret is never in the Terraform state: the parameter is created with
# a placeholder through the write-only argument value_wo (Terraform >= 1.11,
# with the AWS provider pinned here), which Terraform sends once and never stores; the
# provider then records only has_value_wo = true and, on every refresh,
# leaves `value` out of the state instead of decrypting the parameter into
# it. value_wo_version is ignored after creation, so no later apply writes
# the placeholder over the real secret. Set the real secret once after the
# first apply:
#
#   aws ssm put-parameter --overwrite --type SecureString \
#     --name "$(scripts/tf.sh ENV output -raw auth_secret_parameter)" \
#     --value "$(openssl rand -base64 48)"
#
# The placeholder can never sign a token: it starts with "UNSET:", which the
# connect function refuses whatever follows (handlers::config::signing_secret,
# PLACEHOLDER_MARKERS), and it is shorter than the 32 bytes a secret needs.
# terraform/checks feeds this very value to that function on every
# cargo test, and refuses a `value` or `insecure_value` argument here (both
# are stored in the state). Until the real secret is set, connect refuses
# every agent with 503 and logs why at ERROR; once it is set, it takes
# effect within the refresh interval, without a redeploy.

resource "aws_ssm_parameter" "this" {
  #checkov:skip=CKV_AWS_337:Encrypted with the AWS managed aws/ssm key: free, and the connect function needs no kms:Decrypt grant or key policy (a customer managed key would need a kms:Decrypt grant and key policy)
  name             = var.name
  description      = "HS256 secret for serverless-tunnel agent tokens (set with aws ssm put-parameter --overwrite; see terraform/README.md)"
  type             = "SecureString"
  value_wo         = "UNSET: see terraform/README.md"
  value_wo_version = 1
  tags             = var.tags

  lifecycle {
    # The placeholder is written at creation only: bumping the version (or
    # adopting a parameter created by an older configuration, whose state
    # has no version) must never overwrite the real secret set out of band.
    ignore_changes = [value_wo_version]
  }
}

# A parameter created before value_wo (by an older version of this module)
# still has its value in the state: the provider keeps refreshing it there.
# This warns at every plan until it is recreated (terraform/README.md,
# "The agent-token secret").
check "secret_not_in_state" {
  assert {
    condition     = aws_ssm_parameter.this.has_value_wo == true
    error_message = "The agent-token secret parameter ${var.name} was created by an older configuration that kept its value in the Terraform state. Rotate it: terraform/README.md, \"The agent-token secret\", explains how."
  }
}
