# The two DynamoDB tables of docs/contracts.md, mirrored by
# handlers::manifest::TABLES (the checks in terraform/checks compare them).
#
# Both hold only ephemeral routing state: a connection lives at most 2 h
# (+5 min TTL slack), a pending request at most a few seconds (+5 min).
#
# Point-in-time recovery: OFF by default. Restoring a table to a past second
# would resurrect connections that API Gateway has already closed and requests
# whose visitors are long gone; nothing in them is worth restoring, and PITR
# is billed per GB-month even while idle. `point_in_time_recovery = true`
# turns it on for operators whose policy demands it.
#
# Encryption at rest: always on (DynamoDB cannot be unencrypted). The default
# is the AWS-owned key: free, no KMS request charges on the hot path, no key
# policy to get wrong. A customer managed key (`kms_key_arn`) is offered for
# operators who must control or audit the key; it costs $1/month plus KMS
# requests, which breaks "zero while idle", hence not the default. The items
# hold connection ids, subdomains and, for a few seconds, one response each:
# no credentials (tokens are never stored).

resource "aws_dynamodb_table" "connections" {
  #checkov:skip=CKV_AWS_28:Ephemeral routing state (<= 2 h); a restore would resurrect closed connections. PITR is a variable for those who need it.
  #checkov:skip=CKV_AWS_119:AWS-owned key by choice: no KMS cost or key policy on the hot path; a CMK can be given through var.kms_key_arn.
  #checkov:skip=CKV2_AWS_16:On-demand (PAY_PER_REQUEST) capacity scales by itself; auto scaling applies to provisioned tables only.
  name                        = "${var.name_prefix}-connections"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "connectionId"
  deletion_protection_enabled = var.deletion_protection

  # Connection items (key = API Gateway connection id) and subdomain claim
  # items (key = "sub#<subdomain>") share this key: the subdomain lookup is a
  # strongly consistent GetItem on the claim, so there is no GSI.
  attribute {
    name = "connectionId"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = var.kms_key_arn != null
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

resource "aws_dynamodb_table" "pending" {
  #checkov:skip=CKV_AWS_28:Pending requests live seconds (TTL +5 min); nothing to restore. PITR is a variable for those who need it.
  #checkov:skip=CKV_AWS_119:AWS-owned key by choice: no KMS cost or key policy on the hot path; a CMK can be given through var.kms_key_arn.
  #checkov:skip=CKV2_AWS_16:On-demand (PAY_PER_REQUEST) capacity scales by itself; auto scaling applies to provisioned tables only.
  name                        = "${var.name_prefix}-pending-requests"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "requestId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "requestId"
    type = "S"
  }

  # One item per answer, keyed "<request id>#<connection id>", written once
  # by the response function and read by forwarding (docs/contracts.md). No
  # index: an index is one more write for every item.

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = var.kms_key_arn != null
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}
