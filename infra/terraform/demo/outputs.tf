output "vpc_id" {
  value = aws_vpc.this.id
}

output "subnet_ids" {
  value = aws_subnet.public[*].id
}

output "security_group_id" {
  value = aws_security_group.tasks.id
}

output "ecs_cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "ecs_cluster_arn" {
  value = aws_ecs_cluster.this.arn
}

output "service_names" {
  description = "Mode => ECS service name."
  value       = { for mode, s in aws_ecs_service.mode : mode => s.name }
}

output "task_definition_arns" {
  description = "Mode => task definition ARN (with revision)."
  value       = { for mode, td in aws_ecs_task_definition.mode : mode => td.arn }
}

output "log_group_names" {
  value = [for g in aws_cloudwatch_log_group.mode : g.name]
}

output "ssm_parameter_names" {
  value = [aws_ssm_parameter.ig_api_key.name, aws_ssm_parameter.db_dsn.name]
}

output "execution_role_name" {
  value = aws_iam_role.task_execution.name
}
