output "sns_topic_arn" {
  description = "The SNS topic the alarms notify (subscribe more recipients with aws sns subscribe)."
  value       = local.topic_arn
}

output "alarm_arns" {
  description = "ARNs of every alarm, by name."
  value = merge(
    { for alarm in aws_cloudwatch_metric_alarm.errors : alarm.alarm_name => alarm.arn },
    { for alarm in aws_cloudwatch_metric_alarm.throttles : alarm.alarm_name => alarm.arn },
    { for alarm in aws_cloudwatch_metric_alarm.duration : alarm.alarm_name => alarm.arn },
    { (aws_cloudwatch_metric_alarm.http_5xx.alarm_name) = aws_cloudwatch_metric_alarm.http_5xx.arn },
  )
}
