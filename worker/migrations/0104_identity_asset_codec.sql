-- Watermark codec 2 (issue 13): the tiled mark survives crops, and its decoder reports where the marked original
-- lies in the copy, in units of the original's short side. Verify maps the record's face boxes into the copy with
-- that geometry, so the record keeps the protected image's size, and which codec marked it so that images marked
-- before keep verifying with the whole-frame reading. Rows written before this migration hold NULL in all three:
-- codec 1, size unknown (a whole-frame geometry needs none).
ALTER TABLE identity_assets ADD COLUMN codec INTEGER CHECK (codec IN (1, 2));
ALTER TABLE identity_assets ADD COLUMN width INTEGER CHECK (width > 0);
ALTER TABLE identity_assets ADD COLUMN height INTEGER CHECK (height > 0);
