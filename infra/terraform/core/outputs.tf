output "bucket_names" {
  description = "Bucket role => bucket name."
  value       = { for k, b in aws_s3_bucket.this : k => b.bucket }
}

output "dynamodb_table_names" {
  description = "Table key => table name."
  value       = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "ecr_repository_url" {
  value = aws_ecr_repository.spine.repository_url
}

output "ssm_parameter_names" {
  value = [
    aws_ssm_parameter.confluent_bootstrap.name,
    aws_ssm_parameter.confluent_api_key.name,
    aws_ssm_parameter.confluent_api_secret.name,
  ]
}

output "budget_name" {
  value = aws_budgets_budget.monthly.name
}
