output "parameter_name" {
  description = "Name of the SSM parameter holding the secret (the connect function's AUTH_SECRET_PARAMETER)."
  value       = aws_ssm_parameter.this.name
}

output "parameter_arn" {
  description = "ARN of the SSM parameter (the connect function may ssm:GetParameter it)."
  value       = aws_ssm_parameter.this.arn
}
