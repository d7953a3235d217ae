DROP TABLE "repos";--> statement-breakpoint
DROP TYPE "public"."repo_visibility";
