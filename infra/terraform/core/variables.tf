# Written by the harness as terraform.tfvars.json; names and types are its contract.

variable "region" {
  type = string
}

variable "aws_endpoint" {
  description = "Emulator URL (embedded profile); empty means real AWS."
  type        = string
  default     = ""
}

variable "tags" {
  type = map(string)
}

variable "buckets" {
  description = "Keyed by role: oracle_source, oracle, evidence, archive, quarantine."
  type = map(object({
    name                = string
    versioning          = bool
    encryption          = string
    public_access_block = bool
  }))
}

variable "dynamodb_tables" {
  type = map(object({
    name     = string
    hash_key = string
  }))
}

variable "ecr_repository" {
  type = string
}

variable "ecr_tag_mutability" {
  type = string
}

variable "confluent_ssm" {
  type = object({
    bootstrap_path  = string
    api_key_path    = string
    api_secret_path = string
  })
}

variable "confluent_bootstrap" {
  type = string
}

variable "confluent_api_key" {
  type      = string
  sensitive = true
}

variable "confluent_api_secret" {
  type      = string
  sensitive = true
}

variable "budget" {
  type = object({
    name                    = string
    limit_usd               = number
    alert_threshold_percent = number
    alert_email             = string
  })
}
