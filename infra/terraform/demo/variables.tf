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

variable "name_prefix" {
  description = "Prefix for names this stack invents (VPC, subnets, role, ...)."
  type        = string
}

variable "vpc_cidr" {
  type = string
}

variable "ecs_cluster" {
  type = string
}

variable "task_families" {
  description = "Spine mode => task definition family; one task definition per mode."
  type        = map(string)
}

variable "services" {
  description = "Spine mode => ECS service name; each runs the task definition of its mode."
  type        = map(string)

  validation {
    condition     = alltrue([for mode in keys(var.services) : contains(keys(var.task_families), mode)])
    error_message = "Every key of services must also be a key of task_families."
  }
}

variable "image" {
  description = "Full image reference, e.g. <repository_url>:<tag>."
  type        = string
}

variable "log_group_prefix" {
  description = "Log groups are <prefix>/<mode>."
  type        = string
}

variable "demo_ssm" {
  type = object({
    ig_api_key_path = string
    db_dsn_path     = string
  })
}

variable "ig_api_key" {
  type      = string
  sensitive = true
}

variable "db_dsn" {
  type      = string
  sensitive = true
}
