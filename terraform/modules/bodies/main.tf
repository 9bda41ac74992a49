# The bodies bucket (docs/contracts.md, "The data path"): request and answer
# bodies too large for a WebSocket message, for the seconds a request lasts.
# Forwarding stores a large request body here and hands the agent a
# presigned GET; the agent uploads a large answer body through a presigned
# PUT, forwarding reads it back and deletes both objects (S3 DELETE is free).
#
# - Keys are random per request (req/<128 random bits>, res/<…>), never
#   derived from anything logged.
# - Presigned URLs live 60 s (protocol::limits::SIGNED_URL_TTL). A URL acts
#   with its signer's permissions: the bucket policy lets no principal but
#   the roles in var.object_role_arns (forwarding's) read or write objects,
#   so only forwarding can sign a working URL.
# - Nothing stays: the lifecycle rule expires whatever forwarding did not
#   delete (a crashed invocation, an answer nobody waited for) after
#   var.expiration_days, and aborts stale multipart uploads.
# - Private: public access blocked, ACLs disabled, TLS only, encrypted at
#   rest with S3-managed keys (SSE-S3: no KMS request on the hot path).

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Access logs would record every presigned URL (a credential while it lives) and cost a PUT per request; forwarding's logs carry the request ids.
  #checkov:skip=CKV_AWS_21:Objects live seconds and are deleted on purpose; versioning would keep every body as a noncurrent version.
  #checkov:skip=CKV_AWS_144:Ephemeral request data; a replica in another region would copy visitors' bodies for no use.
  #checkov:skip=CKV_AWS_145:SSE-S3 by choice: SSE-KMS calls KMS on every GET and PUT ($0.03 per 10,000), about doubling the cost of a large body; see terraform/README.md.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to these objects; forwarding reads them back itself.
  bucket_prefix = "${var.name_prefix}-bodies-"
  # Only transient bodies live here: destroying the stack must not be
  # blocked by an object a crashed invocation left behind.
  force_destroy = true
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    # ACLs disabled: the bucket policy alone decides.
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-bodies"
    status = "Enabled"

    # Every object: an empty prefix matches all keys. (An empty `filter {}`
    # means the same to S3 but draws the provider's "Invalid Attribute
    # Combination" warning, to become an error.)
    filter {
      prefix = ""
    }

    expiration {
      days = var.expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "this" {
  statement {
    sid     = "TlsOnly"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid    = "ObjectsOnlyForTheSigners"
    effect = "Deny"
    # Reading and writing bodies; deleting stays open to administrators
    # (force_destroy empties the bucket with the deployer's credentials).
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    # aws:PrincipalArn is the role's ARN for its sessions, which is what a
    # presigned URL carries.
    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = var.object_role_arns
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.this.json

  # With block_public_policy, S3 checks each new policy; this one only denies.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
