# One Fargate task definition per spine mode; long-running modes also get a service.

resource "aws_cloudwatch_log_group" "mode" {
  for_each          = var.task_families
  name              = "${var.log_group_prefix}/${each.key}"
  retention_in_days = 7
}

resource "aws_ecs_cluster" "this" {
  name = var.ecs_cluster
}

resource "aws_ecs_task_definition" "mode" {
  for_each                 = var.task_families
  family                   = each.value
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "256"
  memory                   = "512"
  execution_role_arn       = aws_iam_role.task_execution.arn

  # cpu/memory repeated on the container: Fargate does not need them, moto does.
  container_definitions = jsonencode([{
    name        = "spine"
    image       = var.image
    essential   = true
    cpu         = 256
    memory      = 512
    command     = [each.key]
    environment = [{ name = "SPINE_MODE", value = each.key }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.mode[each.key].name
        awslogs-region        = var.region
        awslogs-stream-prefix = "spine"
      }
    }
  }])
}

resource "aws_ecs_service" "mode" {
  for_each        = var.services
  name            = each.value
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.mode[each.key].arn
  launch_type     = "FARGATE"
  desired_count   = 1

  # The harness checks readiness itself; Terraform must not block on task health.
  wait_for_steady_state = false

  network_configuration {
    subnets          = aws_subnet.public[*].id
    security_groups  = [aws_security_group.tasks.id] # moto returns HTTP 500 without one
    assign_public_ip = true
  }

  lifecycle {
    # moto never returns availabilityZoneRebalancing, so every plan would re-set it;
    # the demo has no opinion on it, so AWS's default stands on both profiles.
    ignore_changes = [availability_zone_rebalancing]
  }
}
