output "connections_table_name" {
  description = "Name of the connections table (CONNECTIONS_TABLE_NAME)."
  value       = aws_dynamodb_table.connections.name
}

output "connections_table_arn" {
  description = "ARN of the connections table."
  value       = aws_dynamodb_table.connections.arn
}

output "pending_table_name" {
  description = "Name of the pending requests table (PENDING_REQUESTS_TABLE_NAME)."
  value       = aws_dynamodb_table.pending.name
}

output "pending_table_arn" {
  description = "ARN of the pending requests table (its indexes are \"<arn>/index/<name>\")."
  value       = aws_dynamodb_table.pending.arn
}
