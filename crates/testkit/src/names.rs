//! Small vocabularies for generated people and places.

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Charlotte",
    "James", "Ava", "William", "Isabella", "Benjamin", "Mia", "Lucas", "Evelyn", "Henry",
    "Harper", "Theodore", "Luna", "Jack", "Camila", "Levi", "Gianna", "Alexander", "Elizabeth",
    "Jackson", "Eleanor", "Mateo", "Ella", "Daniel", "Abigail", "Michael", "Sofia", "Mason",
    "Avery", "Sebastian", "Scarlett", "Ethan", "Emily", "Logan", "Aria", "Owen", "Penelope",
    "Samuel", "Chloe", "Jacob", "Layla", "Asher", "Mila", "Aiden", "Nora", "John", "Hazel",
    "Joseph", "Madison", "Wyatt", "Ellie", "David", "Lily", "Leo", "Nova", "Luke", "Isla",
    "Julian", "Grace", "Hudson", "Violet", "Grayson", "Aurora", "Matthew", "Riley", "Ezra",
    "Zoey", "Gabriel", "Willow", "Carter", "Emilia", "Isaac", "Stella", "Jayden", "Zoe",
    "Luca", "Victoria", "Anthony", "Hannah", "Dylan", "Addison", "Lincoln", "Leah", "Thomas",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price",
];

pub(crate) const COUNTRIES: &[(&str, &[&str])] = &[
    ("US", &["New York", "Chicago", "Austin", "Seattle", "Denver", "Boston"]),
    ("GB", &["London", "Manchester", "Leeds", "Bristol"]),
    ("DE", &["Berlin", "Hamburg", "Munich", "Cologne"]),
    ("FR", &["Paris", "Lyon", "Marseille"]),
    ("NL", &["Amsterdam", "Rotterdam", "Utrecht"]),
    ("CA", &["Toronto", "Montreal", "Vancouver"]),
];

pub(crate) const EMAIL_DOMAINS: &[&str] =
    &["gmail.com", "yahoo.com", "outlook.com", "proton.me", "icloud.com", "example.org"];

pub(crate) const CATEGORIES: &[&str] =
    &["audio", "computers", "phones", "cameras", "gaming", "accessories", "smart-home", "tv"];
