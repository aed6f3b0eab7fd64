# Public-only network: tasks get public IPs and reach ECR/Confluent through the internet
# gateway. No NAT gateway and no load balancer, both of which bill by the hour.

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  # Two subnets in two AZs: ECS services want more than one for placement.
  subnet_azs = slice(data.aws_availability_zones.available.names, 0, 2)
}

resource "aws_vpc" "this" {
  cidr_block = var.vpc_cidr
  # Both required for tasks to resolve endpoints (moto's run_task also insists on them).
  enable_dns_hostnames = true
  enable_dns_support   = true

  tags = { Name = "${var.name_prefix}-vpc" }
}

# No map_public_ip_on_launch: the services ask for public IPs themselves
# (assign_public_ip), and setting it costs a ~10 s provider wait on every apply.
resource "aws_subnet" "public" {
  count             = length(local.subnet_azs)
  vpc_id            = aws_vpc.this.id
  availability_zone = local.subnet_azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index)

  tags = { Name = "${var.name_prefix}-public-${count.index}" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name_prefix}-igw" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }

  tags = { Name = "${var.name_prefix}-public" }
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# Egress only: nothing in the demo accepts inbound connections.
resource "aws_security_group" "tasks" {
  name        = "${var.name_prefix}-tasks"
  description = "spine ECS tasks: egress only"
  vpc_id      = aws_vpc.this.id

  egress {
    description = "all outbound"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = { Name = "${var.name_prefix}-tasks" }
}
