# The HS256 secret agents' tokens are signed with: an SSM SecureString the
# connect function reads once per cold start (AUTH_SECRET_PARAMETER).
#
# Terraform creates the parameter with a placeholder and never manages its
# value afterwards (ignore_changes), so the real secret is never in the
# state or a plan. Set it once after the first apply:
#
#   aws ssm put-parameter --overwrite --type SecureString \
#     --name "$(terraform output -raw auth_secret_parameter)" \
#     --value "$(openssl rand -base64 48)"
#
# Until then the placeholder is too short to be a secret (< 32 bytes): the
# connect function refuses to start and says so in its log, so no agent
# connects with a guessable secret.

resource "aws_ssm_parameter" "this" {
  #checkov:skip=CKV_AWS_337:Encrypted with the AWS managed aws/ssm key: free, and the connect function needs no kms:Decrypt grant or key policy (a customer managed key would need a kms:Decrypt grant and key policy)
  name        = var.name
  description = "HS256 secret for serverless-tunnel agent tokens (set with aws ssm put-parameter --overwrite; see terraform/README.md)"
  type        = "SecureString"
  value       = "placeholder: set me with aws ssm put-parameter --overwrite"
  tags        = var.tags

  lifecycle {
    # The real value is set out of band and must never be overwritten or
    # read into the state by a later apply.
    ignore_changes = [value]
  }
}
