-- Every number has a phone number ID, as Meta's numbers do (Meta's Graph dialect addresses a
-- number by it): a cloud-api number's is Meta's (its provider_ref already); a simulated number
-- gets one of its own, 15 digits starting with 9, here for those added before.
UPDATE numbers
SET provider_ref = '9' || substr('00000000000000' || CAST(abs(random() % 100000000000000) AS TEXT), -14)
WHERE provider_ref IS NULL AND provider = 'simulated';
