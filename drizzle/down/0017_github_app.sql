DROP TABLE "github_workflow_runs";
--> statement-breakpoint
DROP TABLE "github_webhook_deliveries";
