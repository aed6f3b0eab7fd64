# Durable stack: survives between runs; the demo stack is applied and destroyed per run.

# --- S3: one bucket per role, each with versioning, SSE and a public access block ---

resource "aws_s3_bucket" "this" {
  for_each = var.buckets
  bucket   = each.value.name
}

# Always managed (Enabled or Suspended) so the desired state is explicit for every bucket.
resource "aws_s3_bucket_versioning" "this" {
  for_each = var.buckets
  bucket   = aws_s3_bucket.this[each.key].id

  versioning_configuration {
    status = each.value.versioning ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = var.buckets
  bucket   = aws_s3_bucket.this[each.key].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = each.value.encryption
    }
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = var.buckets
  bucket   = aws_s3_bucket.this[each.key].id

  block_public_acls       = each.value.public_access_block
  block_public_policy     = each.value.public_access_block
  ignore_public_acls      = each.value.public_access_block
  restrict_public_buckets = each.value.public_access_block
}

# --- DynamoDB: on-demand tables with a single string hash key ---

resource "aws_dynamodb_table" "this" {
  for_each     = var.dynamodb_tables
  name         = each.value.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = each.value.hash_key

  attribute {
    name = each.value.hash_key
    type = "S"
  }
}

# --- ECR: the spine image; IMMUTABLE so a certified tag cannot be overwritten ---

resource "aws_ecr_repository" "spine" {
  name                 = var.ecr_repository
  image_tag_mutability = var.ecr_tag_mutability
}

# --- SSM: Confluent connection settings; credentials as SecureString ---

resource "aws_ssm_parameter" "confluent_bootstrap" {
  name  = var.confluent_ssm.bootstrap_path
  type  = "String"
  value = var.confluent_bootstrap
}

resource "aws_ssm_parameter" "confluent_api_key" {
  name  = var.confluent_ssm.api_key_path
  type  = "SecureString"
  value = var.confluent_api_key
}

resource "aws_ssm_parameter" "confluent_api_secret" {
  name  = var.confluent_ssm.api_secret_path
  type  = "SecureString"
  value = var.confluent_api_secret
}

# --- Budgets: monthly cost guard-rail with one e-mail alert on actual spend ---

# On the emulator this needs the harness's moto launcher (harness.substrate.moto_launch):
# stock moto 5 lacks Budgets ListTagsForResource and DescribeSubscribersForNotification,
# which provider 5.100 calls after every create and refresh.
resource "aws_budgets_budget" "monthly" {
  name         = var.budget.name
  budget_type  = "COST"
  limit_amount = tostring(var.budget.limit_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = var.budget.alert_threshold_percent
    threshold_type             = "PERCENTAGE"
    notification_type          = "ACTUAL"
    subscriber_email_addresses = [var.budget.alert_email]
  }
}
