output "domain_name" {
  description = "The public domain tunnels are subdomains of (the apex itself serves nothing)."
  value       = var.domain_name
}

output "public_url_template" {
  description = "Public URL of a tunnel, with the {subdomain} placeholder (PUBLIC_URL_TEMPLATE)."
  value       = "https://{subdomain}.${var.domain_name}"
}

output "certificate_arn" {
  description = "ARN of the validated ACM certificate for *.DOMAIN."
  value       = aws_acm_certificate_validation.this.certificate_arn
}
