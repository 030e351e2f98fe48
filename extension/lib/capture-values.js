// Capture shows values for people: dates in the server's date format setting, and yes/no as
// words in a viewed event. The host takes ISO dates and "true" / "false".
const DAY_FIRST = /^(\d{2})-(\d{2})-(\d{4})$/;
const YES_NO = { Yes: "true", No: "false" };

/** A date as Capture showed it, as YYYY-MM-DD; anything else is left for the checks to name. */
export function isoDate(value, dateFormat) {
  const dayFirst = dateFormat === "dd-mm-yyyy" ? DAY_FIRST.exec(value) : null;
  return dayFirst ? `${dayFirst[3]}-${dayFirst[2]}-${dayFirst[1]}` : value;
}

/** The form read from Capture with each value as DHIS2 stores it, by the program's value types. */
export function storedForm(form, dataElements, dateFormat) {
  const valueTypes = new Map(dataElements.map((dataElement) => [dataElement.uid, dataElement.valueType]));
  const values = {};
  for (const [uid, value] of Object.entries(form.values)) {
    const valueType = valueTypes.get(uid);
    if (valueType === "DATE") values[uid] = isoDate(value, dateFormat);
    else if (valueType === "BOOLEAN" || valueType === "TRUE_ONLY") values[uid] = YES_NO[value] ?? value;
    else values[uid] = value;
  }
  return { ...form, occurredAt: isoDate(form.occurredAt, dateFormat), values };
}
