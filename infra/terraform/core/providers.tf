# One provider block serves both profiles: with aws_endpoint empty it talks to real AWS
# with no overrides; with it set (embedded moto) every service used here is redirected.
locals {
  emulated = var.aws_endpoint != ""
}

provider "aws" {
  region = var.region

  # moto accepts any credentials and has no instance metadata; path-style S3 because
  # virtual-hosted bucket names do not resolve on loopback.
  s3_use_path_style           = local.emulated
  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  # A few retries on the emulator: its server sometimes drops a kept-alive connection under
  # load ("use of closed network connection"), which a retry absorbs. More would hide a
  # missing emulator feature behind minutes of back-off.
  max_retries = local.emulated ? 4 : null

  dynamic "endpoints" {
    for_each = local.emulated ? [var.aws_endpoint] : []
    content {
      budgets                  = endpoints.value
      dynamodb                 = endpoints.value
      ec2                      = endpoints.value
      ecr                      = endpoints.value
      ecs                      = endpoints.value
      elbv2                    = endpoints.value
      iam                      = endpoints.value
      logs                     = endpoints.value
      resourcegroupstaggingapi = endpoints.value
      s3                       = endpoints.value
      ssm                      = endpoints.value
      sts                      = endpoints.value
    }
  }

  default_tags {
    tags = merge(var.tags, { stack = "core" })
  }
}
