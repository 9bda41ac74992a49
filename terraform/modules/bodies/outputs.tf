output "bucket_name" {
  description = "Name of the bodies bucket (the forwarding function's BODIES_BUCKET_NAME)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bodies bucket (object grants are on <arn>/*)."
  value       = aws_s3_bucket.this.arn
}
