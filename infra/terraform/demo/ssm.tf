# Run-scoped secrets, destroyed with the stack.

resource "aws_ssm_parameter" "ig_api_key" {
  name  = var.demo_ssm.ig_api_key_path
  type  = "SecureString"
  value = var.ig_api_key
}

resource "aws_ssm_parameter" "db_dsn" {
  name  = var.demo_ssm.db_dsn_path
  type  = "SecureString"
  value = var.db_dsn
}
