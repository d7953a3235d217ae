-- PostgreSQL cannot drop an enum value: the type is made again without it; a rejected request or event
-- becomes failed.
DROP INDEX "dsr_open_due_idx";--> statement-breakpoint
ALTER TYPE "public"."dsr_status" RENAME TO "dsr_status_with_rejected";--> statement-breakpoint
CREATE TYPE "public"."dsr_status" AS ENUM('pending', 'processing', 'completed', 'failed');--> statement-breakpoint
ALTER TABLE "data_subject_requests" ALTER COLUMN "status" DROP DEFAULT;--> statement-breakpoint
ALTER TABLE "data_subject_requests" ALTER COLUMN "status" TYPE "public"."dsr_status"
  USING (CASE WHEN "status"::text = 'rejected' THEN 'failed' ELSE "status"::text END)::"public"."dsr_status";--> statement-breakpoint
ALTER TABLE "data_subject_requests" ALTER COLUMN "status" SET DEFAULT 'pending';--> statement-breakpoint
ALTER TABLE "data_subject_request_events" ALTER COLUMN "status" TYPE "public"."dsr_status"
  USING (CASE WHEN "status"::text = 'rejected' THEN 'failed' ELSE "status"::text END)::"public"."dsr_status";--> statement-breakpoint
DROP TYPE "dsr_status_with_rejected";--> statement-breakpoint
CREATE INDEX "dsr_open_due_idx" ON "data_subject_requests" USING btree ("due_at") WHERE "data_subject_requests"."status" <> 'completed';
