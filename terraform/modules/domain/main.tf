# Optional custom domain (modules/tunnel instantiates it only with host
# routing, which needs one): https://<subdomain>.DOMAIN reaches the HTTP API
# and the forwarding function routes by Host alone, so every tunnel is its
# own browser origin. Without it, tunnels use path routing on the
# execute-api URL (https://{api-id}.execute-api.{region}.amazonaws.com/<subdomain>/...),
# one origin shared by all (single user only).
#
# Only *.DOMAIN is served: one certificate, one API Gateway custom domain
# mapped to the HTTP API's $default stage, a Route 53 alias record (A). The
# apex is deliberately not mapped: https://DOMAIN/<sub>/ would put every
# tunnel back on one origin.
#
# IPv4 only: a regional custom domain answers on IPv4 unless its
# ip_address_type is "dualstack", so an AAAA alias would point at nothing.
# terraform/checks refuses an AAAA record without a dual-stack domain.

locals {
  wildcard = "*.${var.domain_name}"
  # The names served; each gets a custom domain, a mapping and records.
  names = {
    wildcard = local.wildcard
  }
}

resource "aws_acm_certificate" "this" {
  #checkov:skip=CKV2_AWS_71:The wildcard is the product: every tunnel is https://<random-subdomain>.DOMAIN, unknown in advance.
  domain_name       = local.wildcard
  validation_method = "DNS"
  tags              = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

# allow_overwrite: a validation record left by an earlier certificate for
# the same name is taken over instead of failing.
resource "aws_route53_record" "validation" {
  for_each = {
    for option in aws_acm_certificate.this.domain_validation_options : option.domain_name => {
      name   = option.resource_record_name
      type   = option.resource_record_type
      record = option.resource_record_value
    }
  }

  zone_id         = var.route53_zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [for record in aws_route53_record.validation : record.fqdn]
}

resource "aws_apigatewayv2_domain_name" "this" {
  for_each = local.names

  domain_name = each.value

  domain_name_configuration {
    certificate_arn = aws_acm_certificate_validation.this.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }

  tags = var.tags
}

resource "aws_apigatewayv2_api_mapping" "this" {
  for_each = local.names

  api_id      = var.http_api_id
  domain_name = aws_apigatewayv2_domain_name.this[each.key].id
  stage       = var.http_api_stage
}

resource "aws_route53_record" "alias" {
  for_each = local.names

  zone_id = var.route53_zone_id
  name    = aws_apigatewayv2_domain_name.this[each.key].domain_name
  type    = "A"

  alias {
    name                   = aws_apigatewayv2_domain_name.this[each.key].domain_name_configuration[0].target_domain_name
    zone_id                = aws_apigatewayv2_domain_name.this[each.key].domain_name_configuration[0].hosted_zone_id
    evaluate_target_health = false
  }
}

# The A record's key before AAAA records were dropped: moved, not recreated.
moved {
  from = aws_route53_record.alias["wildcard-A"]
  to   = aws_route53_record.alias["wildcard"]
}
