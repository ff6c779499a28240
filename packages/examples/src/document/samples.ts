/**
 * Documents bundled with the examples: the demo reads the report when no `--input` is given.
 */

/** A quarterly earnings report: long enough to take the thorough pipeline. */
export const quarterlyReport = `Northwind Traders: third quarter earnings report

Northwind Traders reported third quarter revenue of 48.2 million dollars, up 6.5 percent from a year earlier.
Earnings per share rose to 1.12 dollars, ahead of the guidance the company gave in July.
Growth came mostly from the wholesale distribution business in Europe, where order volume rose 9 percent.
Freight costs remained high and reduced the gross margin by 1.4 points compared with the second quarter.
The board approved a dividend of 0.30 dollars per share, payable on 2026-12-15.
Management expects fourth quarter earnings to be in line with the third quarter, with revenue between 47 and 50 million dollars.
Risks named in the report include currency movements, a pending renegotiation of the main shipping contract, and slower demand in Asia.
Questions about the report go to the investor relations team, contact Maria Anders, maria.anders@northwind.example.`

/** A short note: the fast pipeline handles it. */
export const shortNote = `Fabrikam Logistics complaint: our last three deliveries arrived late and support has not answered. Please call back.`
