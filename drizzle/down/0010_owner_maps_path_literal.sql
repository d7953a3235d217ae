ALTER TABLE "owner_maps" DROP COLUMN "path_literal";
